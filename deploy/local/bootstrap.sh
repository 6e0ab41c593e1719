#!/usr/bin/env bash
# Install what Baton needs to build and run locally, skipping what is already there:
# uv and the locked Python environment, a Java runtime and Maven (for Kafka's jars),
# and Debian's Chromium (for the approvals web inbox tests).
set -euo pipefail
# shellcheck source=deploy/local/env.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"

UV_VERSION="${BATON_UV_VERSION:-0.13.9}"
say() { printf 'bootstrap: %s\n' "$*"; }

apt_install() {
  say "installing $* from Debian packages"
  if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
command -v curl >/dev/null || apt_install curl
# The approvals web inbox is tested in headless Chromium, driven by Playwright (no browser download).
[[ -x /usr/bin/chromium ]] || apt_install chromium

if ! command -v uv >/dev/null; then
  say "installing uv $UV_VERSION with pip"
  python3 -m pip install --quiet "uv==$UV_VERSION"
fi
cd "$BATON_REPO_ROOT"
# Bytecode is compiled at install: this environment may set PYTHONDONTWRITEBYTECODE, and
# without .pyc files every service start recompiles its dependencies (about 3 CPU s).
say "syncing the Python environment (uv sync --locked --compile-bytecode)"
uv sync --locked --compile-bytecode --quiet
say "python environment ready in $BATON_REPO_ROOT/.venv"
