#!/usr/bin/env bash
# `make test`: static checks, then every test tier against a real Kafka and PostgreSQL.
#
# The test stack lives apart from `make up`'s (own directory and ports), is started
# here if it is not running, and is stopped again if this script started it.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
export BATON_STACK_DIR="${BATON_TEST_STACK_DIR:-$(cd "$HERE/../.." && pwd -P)/.baton/test}"
export BATON_KAFKA_PORT="${BATON_TEST_KAFKA_PORT:-29092}"
export BATON_KAFKA_CONTROLLER_PORT="${BATON_TEST_KAFKA_CONTROLLER_PORT:-29093}"
export BATON_PG_PORT="${BATON_TEST_PG_PORT:-25432}"
# shellcheck source=deploy/local/env.sh
. "$HERE/env.sh"
cd "$BATON_REPO_ROOT"
VENV="$BATON_REPO_ROOT/.venv/bin"
step() { printf '\n==> %s\n' "$*"; }

step "lint (ruff)"
"$VENV/ruff" check .
"$VENV/ruff" format --check .
step "type check (mypy --strict)"
"$VENV/mypy" libs/common/src/baton_common libs/cli/src/baton_cli services/*/src/baton_* examples/world/src/baton_world tests bench
step "JSON Schema drift"
"$VENV/python" -m baton_common.schemas --check

started=()
cleanup() {
  local part
  for part in "${started[@]}"; do "$HERE/$part.sh" stop || true; done
}
trap cleanup EXIT
for part in kafka postgres; do
  if "$HERE/$part.sh" status >/dev/null 2>&1; then
    echo "$part: test instance already running, reusing it"
  else
    step "starting $part for the tests"
    "$HERE/$part.sh" start
    started+=("$part")
  fi
done

step "tests (pytest: unit, consumer and integration tiers)"
"$VENV/pytest" "$@"
