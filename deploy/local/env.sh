# shellcheck shell=bash
# Baton local stack: shared settings.
#
# Source it (do not execute it):   . deploy/local/env.sh
# It only sets and exports variables; it does not change shell options, so it is
# safe to source from an interactive shell or from a script running `set -euo pipefail`.
#
# Every base value can be overridden from the environment. The two derived values
# (BATON_KAFKA_BOOTSTRAP, BATON_DATABASE_URL) are always recomputed from the ports,
# so a value exported by an earlier `source` cannot go stale when ports change.

# Repo root = two levels above this file, whatever the caller's cwd.
BATON_REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)"

# Where running services keep data, pid files and logs (gitignored: .baton/).
BATON_STACK_DIR="${BATON_STACK_DIR:-$BATON_REPO_ROOT/.baton/local}"
# Downloads that outlive a stack dir (Kafka jars). Outside the repo on purpose.
BATON_CACHE_DIR="${BATON_CACHE_DIR:-${HOME:-/tmp}/.cache/baton}"

# Relative paths would break once a script cd's elsewhere (or runs as the postgres
# user), so make both absolute, relative to the caller's cwd.
case "$BATON_STACK_DIR" in /*) ;; *) BATON_STACK_DIR="$PWD/$BATON_STACK_DIR" ;; esac
case "$BATON_CACHE_DIR" in /*) ;; *) BATON_CACHE_DIR="$PWD/$BATON_CACHE_DIR" ;; esac

# Everything binds to loopback only.
BATON_HOST=127.0.0.1

BATON_KAFKA_VERSION="${BATON_KAFKA_VERSION:-4.4.0}"
BATON_KAFKA_PORT="${BATON_KAFKA_PORT:-9092}"
BATON_KAFKA_CONTROLLER_PORT="${BATON_KAFKA_CONTROLLER_PORT:-9093}"
BATON_KAFKA_HEAP="${BATON_KAFKA_HEAP:-512m}"
# Extra JVM GC options for the broker, split on whitespace; empty keeps G1's defaults.
# The broker always writes its GC log to $BATON_STACK_DIR/logs/kafka-gc.log (ADR 0183).
# e.g. BATON_KAFKA_GC_OPTS="-XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35"
BATON_KAFKA_GC_OPTS="${BATON_KAFKA_GC_OPTS:-}"
BATON_KAFKA_START_TIMEOUT="${BATON_KAFKA_START_TIMEOUT:-90}"

BATON_PG_PORT="${BATON_PG_PORT:-55432}"

BATON_LOG_DIR="$BATON_STACK_DIR/logs"

BATON_KAFKA_BOOTSTRAP="$BATON_HOST:$BATON_KAFKA_PORT"
BATON_DATABASE_URL="postgresql://baton:baton@$BATON_HOST:$BATON_PG_PORT/baton"

export BATON_REPO_ROOT BATON_STACK_DIR BATON_CACHE_DIR BATON_HOST BATON_LOG_DIR \
  BATON_KAFKA_VERSION BATON_KAFKA_PORT BATON_KAFKA_CONTROLLER_PORT \
  BATON_KAFKA_HEAP BATON_KAFKA_GC_OPTS BATON_KAFKA_START_TIMEOUT BATON_PG_PORT \
  BATON_KAFKA_BOOTSTRAP BATON_DATABASE_URL

# Small helpers shared by kafka.sh and postgres.sh (prefixed to avoid clashes).

# baton_port_open PORT -> 0 if something accepts TCP connections on 127.0.0.1:PORT.
baton_port_open() {
  # shellcheck disable=SC2016  # $0/$1 expand in the child bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$BATON_HOST" "$1" 2>/dev/null
}

# baton_port_owner PORT -> prints "name(pid=N)" of the listener, if ss can tell.
baton_port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true
}

# baton_pid_alive PID -> 0 if the process exists (and is not a zombie).
baton_pid_alive() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -d "/proc/$pid" ]] || return 1
  state="$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}
