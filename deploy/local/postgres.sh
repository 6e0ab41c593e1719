#!/usr/bin/env bash
# Baton local PostgreSQL: a private cluster in $BATON_STACK_DIR/postgres, on
# 127.0.0.1:$BATON_PG_PORT. It never touches the Debian system cluster (5432).
#
#   deploy/local/postgres.sh install  # apt-get install postgresql if no server binaries
#   deploy/local/postgres.sh start    # initdb once, start, ensure role+db 'baton'
#   deploy/local/postgres.sh stop     # pg_ctl -m fast stop
#   deploy/local/postgres.sh status   # one line; exit 0 running, 1 stale/unhealthy, 3 stopped
#
# Auth is 'trust' for local connections (socket + 127.0.0.1/::1): this is a
# loopback-only dev database. Role 'baton' still gets password 'baton', so
# BATON_DATABASE_URL works unchanged if auth is ever tightened.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=deploy/local/env.sh
. "$SCRIPT_DIR/env.sh"

PG_DIR="$BATON_STACK_DIR/postgres"
PGDATA_DIR="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_OS_USER=postgres          # only used when the script runs as root

say() { printf 'postgres: %s\n' "$*"; }
die() { printf 'postgres: ERROR: %s\n' "$*" >&2; exit 1; }

# Newest installed server, e.g. /usr/lib/postgresql/15/bin ("" if none).
pg_bindir() {
  local d
  d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null \
        | sort -V | tail -n1)"
  if [[ -n "$d" ]]; then dirname "$d"; fi
}

require_bindir() {
  local bin; bin="$(pg_bindir)"
  [[ -n "$bin" ]] || die "no PostgreSQL server found under /usr/lib/postgresql; run: $0 install"
  printf '%s\n' "$bin"
}

# PostgreSQL refuses to run as root: as root, run server commands as the postgres
# OS user; as a normal user, run them as that user.
as_pg() {
  if (( EUID == 0 )); then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# ---------------------------------------------------------------- install ---

cmd_install() {
  local bin; bin="$(pg_bindir)"
  if [[ -n "$bin" ]]; then
    say "server binaries present: $bin"
    return 0
  fi
  (( EUID == 0 )) || die "PostgreSQL is not installed and installing needs root: sudo apt-get install -y postgresql"
  say "installing PostgreSQL with apt-get ..."
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
  bin="$(pg_bindir)"
  [[ -n "$bin" ]] || die "apt-get finished but no /usr/lib/postgresql/*/bin/postgres exists"
  say "installed: $bin"
}

# ------------------------------------------------------------------ start ---

# is_under DIR ROOT -> DIR is ROOT or inside it (false for an empty ROOT).
is_under() { [[ -n "$2" && ( "$1" == "$2" || "$1" == "$2"/* ) ]]; }

# Directories we may chmod o+x: the stack dir and the repo's .baton/ (ours by
# definition). Anything else the postgres user cannot traverse (e.g. a 0700 home
# directory) is reported, not changed.
is_ours() {
  is_under "$1" "$BATON_STACK_DIR" || is_under "$1" "$BATON_REPO_ROOT/.baton"
}

pg_can_traverse() { runuser -u "$PG_OS_USER" -- test -x "$1" 2>/dev/null; }

# Create PG_DIR (and parents) and make sure the postgres OS user can reach it.
prepare_dirs() {
  if (( EUID != 0 )); then
    mkdir -p "$PGDATA_DIR" "$PG_SOCKET_DIR"; chmod 700 "$PGDATA_DIR"; return 0
  fi
  id -u "$PG_OS_USER" >/dev/null 2>&1 \
    || die "OS user '$PG_OS_USER' does not exist (is the postgresql package installed?)"

  # 1) existing ancestors that are not ours must already be traversable.
  local dir="$PG_DIR"
  while [[ "$dir" != "/" ]]; do
    dir="$(dirname "$dir")"
    if [[ -d "$dir" ]] && ! is_ours "$dir" && ! pg_can_traverse "$dir"; then
      die "the '$PG_OS_USER' user cannot traverse $dir, so it cannot reach $PG_DIR.
       Fix: chmod o+x $dir   -- or point BATON_STACK_DIR somewhere reachable (e.g. /tmp/baton-stack)."
    fi
  done

  # 2) create our dirs (a restrictive umask may make them 0700) and open them up;
  #    directories this run creates count as ours too.
  local first_new=""
  dir="$PG_DIR"
  while [[ ! -e "$dir" ]]; do first_new="$dir"; dir="$(dirname "$dir")"; done
  mkdir -p "$PGDATA_DIR" "$PG_SOCKET_DIR"
  dir="$PG_DIR"
  while [[ "$dir" != "/" ]]; do
    dir="$(dirname "$dir")"
    if { is_ours "$dir" || is_under "$dir" "$first_new"; } && ! pg_can_traverse "$dir"; then
      chmod o+x "$dir"
    fi
  done

  # 3) everything under PG_DIR belongs to the postgres user (chown -R only once).
  if [[ "$(stat -c %U "$PGDATA_DIR")" != "$PG_OS_USER" ]]; then
    chown -R "$PG_OS_USER:$PG_OS_USER" "$PG_DIR"
  else
    chown "$PG_OS_USER:$PG_OS_USER" "$PG_DIR" "$PG_SOCKET_DIR"
  fi
  chmod 700 "$PGDATA_DIR"
}

init_cluster_once() {
  local bin="$1"
  if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
    local have want
    have="$(cat "$PGDATA_DIR/PG_VERSION")"
    want="$(basename "$(dirname "$bin")")"
    [[ "$have" == "$want" ]] || die "$PGDATA_DIR was created by PostgreSQL $have but the newest server here is $want; delete $PGDATA_DIR to re-create (loses data)"
    return 0
  fi
  say "initdb $PGDATA_DIR"
  as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$PG_DIR/initdb.log" 2>&1 \
    || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
  # Our settings live in baton.conf (rewritten on every start); include it last.
  printf "\n# Baton local stack settings (deploy/local/postgres.sh)\ninclude_if_exists = 'baton.conf'\n" \
    >>"$PGDATA_DIR/postgresql.conf"
}

write_config() {
  local conf="$PGDATA_DIR/baton.conf" sockdir="$PG_SOCKET_DIR"
  # Unix socket paths are limited to 107 bytes; with a very deep stack dir, go
  # TCP-only rather than fail (everything here connects via 127.0.0.1 anyway).
  if (( ${#sockdir} + ${#BATON_PG_PORT} + 12 > 107 )); then
    say "socket dir path too long for a unix socket; listening on TCP only"
    sockdir=""
  fi
  cat >"$conf" <<EOF
# Generated by deploy/local/postgres.sh on every start -- edits are overwritten.
listen_addresses = '$BATON_HOST'
port = $BATON_PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
fsync = on
EOF
  (( EUID != 0 )) || chown "$PG_OS_USER:$PG_OS_USER" "$conf"
}

# postmaster.pid's first line is the postmaster pid.
postmaster_pid() { head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null | tr -d '[:space:]' || true; }

# Running = postmaster.pid names a live postgres process.
is_running() {
  local pid; pid="$(postmaster_pid)"
  [[ -n "$pid" ]] && baton_pid_alive "$pid" \
    && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres* ]]
}

# Port recorded in postmaster.pid (line 4) by the running server.
running_port() { sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null | tr -d '[:space:]' || true; }

# Live (non-zombie) processes whose cwd is our data dir: every postgres process
# of this cluster has it, so after a crash these are orphaned backends.
cluster_pids() {
  local proc pid real
  real="$(readlink -f "$PGDATA_DIR")"
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    [[ "$(readlink "$proc/cwd" 2>/dev/null || true)" == "$real" ]] || continue
    if baton_pid_alive "$pid"; then printf '%s ' "$pid"; fi
  done
}

# The previous postmaster died without cleaning up (kill -9, OOM, reboot).
# PostgreSQL would refuse to start while its lock files name a pid that still
# exists -- even as an unreaped zombie -- so wait briefly for leftovers to go
# away, then remove the lock files ourselves. Orphaned backends still attached
# to the old shared memory make a restart unsafe: refuse in that case.
recover_stale() {
  local old left deadline=$((SECONDS + 15)) lock lpid
  old="$(postmaster_pid)"
  say "half-started: stale postmaster.pid (pid ${old:-?} is not a running postgres; unclean shutdown?) -- recovering"
  left="$(cluster_pids)"
  while [[ -n "$left" || ( -n "$old" && -e "/proc/$old" ) ]] && (( SECONDS < deadline )); do
    sleep 0.5
    left="$(cluster_pids)"
  done
  [[ -z "$left" ]] || die "orphaned processes of the old server still use $PGDATA_DIR (pids: $left). Stop them (kill <pid>) and retry."
  rm -f "$PGDATA_DIR/postmaster.pid"
  for lock in "$PG_SOCKET_DIR"/.s.PGSQL.*.lock; do
    [[ -f "$lock" ]] || continue
    lpid="$(head -n1 "$lock" | tr -d '[:space:]')"
    if ! baton_pid_alive "$lpid" || [[ "$lpid" == "$old" ]]; then
      rm -f "$lock" "${lock%.lock}"
    fi
  done
}

psql_admin() {  # psql as superuser 'postgres' over TCP (trust auth)
  local bin="$1"; shift
  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$BATON_HOST" -p "$BATON_PG_PORT" -U postgres -d postgres "$@"
}

ensure_role_and_db() {
  local bin="$1"
  if [[ "$(psql_admin "$bin" -tAc "select 1 from pg_roles where rolname = 'baton'")" != 1 ]]; then
    say "creating role baton"
    psql_admin "$bin" -c "create role baton login password 'baton'"
  fi
  if [[ "$(psql_admin "$bin" -tAc "select 1 from pg_database where datname = 'baton'")" != 1 ]]; then
    say "creating database baton"
    psql_admin "$bin" -c "create database baton owner baton"
  fi
  # Benchmarks run CHECKPOINT between timed windows (PostgreSQL 15+: pg_checkpoint).
  if [[ "$(psql_admin "$bin" -tAc "select 1 from pg_roles where rolname = 'pg_checkpoint'
        and not pg_has_role('baton', 'pg_checkpoint', 'member')")" == 1 ]]; then
    psql_admin "$bin" -c "grant pg_checkpoint to baton"
  fi
}

cmd_start() {
  local bin; bin="$(require_bindir)"

  # Serialise concurrent starts. fd 9 is closed for pg_ctl (and so the server),
  # so the lock is released when this script exits.
  mkdir -p "$BATON_STACK_DIR"
  exec 9>"$BATON_STACK_DIR/.postgres-start.lock"
  flock -w 180 9 || die "another 'postgres.sh start' holds $BATON_STACK_DIR/.postgres-start.lock"

  if is_running; then
    local port; port="$(running_port)"
    [[ "$port" == "$BATON_PG_PORT" ]] \
      || die "already running (pid $(postmaster_pid)) but on port $port, not $BATON_PG_PORT; run '$0 stop' first"
    "$bin/pg_isready" -q -h "$BATON_HOST" -p "$BATON_PG_PORT" \
      || die "postmaster pid $(postmaster_pid) is alive but 127.0.0.1:$BATON_PG_PORT is not accepting connections (see $PG_LOG)"
    ensure_role_and_db "$bin"
    say "already running (pid $(postmaster_pid), $BATON_HOST:$BATON_PG_PORT)"
    return 0
  fi

  [[ ! -f "$PGDATA_DIR/postmaster.pid" ]] || recover_stale
  if baton_port_open "$BATON_PG_PORT"; then
    die "port $BATON_HOST:$BATON_PG_PORT is in use by another process $(baton_port_owner "$BATON_PG_PORT") -- not this cluster. Stop it or set BATON_PG_PORT."
  fi

  prepare_dirs
  init_cluster_once "$bin"
  write_config
  (( EUID != 0 )) || { touch "$PG_LOG"; chown "$PG_OS_USER:$PG_OS_USER" "$PG_LOG"; }

  say "starting PostgreSQL $(basename "$(dirname "$bin")") on $BATON_HOST:$BATON_PG_PORT (data $PGDATA_DIR)"
  if ! as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t 60 start >/dev/null 9>&-; then
    printf -- '--- last lines of %s ---\n' "$PG_LOG" >&2
    tail -n 30 "$PG_LOG" >&2 || true
    die "pg_ctl start failed"
  fi
  ensure_role_and_db "$bin"
  say "running (pid $(postmaster_pid)); $BATON_DATABASE_URL ; log: $PG_LOG"
}

# ------------------------------------------------------------------- stop ---

cmd_stop() {
  if ! is_running; then
    if [[ -f "$PGDATA_DIR/postmaster.pid" ]]; then
      say "not running (stale postmaster.pid names pid $(postmaster_pid), not a running postgres; 'start' will clean it up)"
    else
      say "not running"
    fi
    return 0
  fi
  local bin; bin="$(require_bindir)"
  say "stopping (pid $(postmaster_pid))"
  as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
  say "stopped"
}

# ----------------------------------------------------------------- status ---

cmd_status() {
  if is_running; then
    local bin; bin="$(pg_bindir)"
    if [[ -n "$bin" ]] && "$bin/pg_isready" -q -h "$BATON_HOST" -p "$(running_port)"; then
      say "running (pid $(postmaster_pid), $BATON_HOST:$(running_port), data $PGDATA_DIR)"
      return 0
    fi
    say "unhealthy (pid $(postmaster_pid) alive, $BATON_HOST:$(running_port) not accepting connections)"
    return 1
  fi
  if [[ -f "$PGDATA_DIR/postmaster.pid" ]]; then
    say "stale postmaster.pid (pid $(postmaster_pid) is not a running postgres) -- 'postgres.sh start' will recover"
    return 1
  fi
  say "stopped"
  return 3
}

main() {
  case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $(basename "$0") install|start|stop|status" >&2; exit 2 ;;
  esac
}

main "$@"
