#!/usr/bin/env bash
# Baton local stack: the five services, and the local world of outside systems they talk
# to (examples/world: EDR, reputation, IdP, cases, Slack, an LLM), as background processes.
#
#   deploy/local/services.sh start|stop|status|logs [SERVICE...]
#
# Each service runs from the project's virtualenv (.venv, made by `uv sync`), binds
# 127.0.0.1, writes its log to $BATON_STACK_DIR/logs/<name>.log and its pid to
# $BATON_STACK_DIR/run/<name>.pid. `start` waits for every /readyz.
set -euo pipefail
# shellcheck source=deploy/local/env.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"

SERVICES=(world scheduler ingest executor approvals audit)
declare -A PORTS=([ingest]=8081 [scheduler]=8082 [executor]=8083 [approvals]=8084 [audit]=8085 [world]=8090)
RUN_DIR="$BATON_STACK_DIR/run"
VENV_BIN="$BATON_REPO_ROOT/.venv/bin"
READY_TIMEOUT="${BATON_SERVICES_READY_TIMEOUT:-90}"

# Local development identities for every service API (ADR 0900; README "Governance").
# alice and bob approve secops gates, alice also operates secops runs; dev-operator,
# dev-viewer and dev-admin are the other roles. Never use these tokens outside a laptop.
if [[ -z "${BATON_AUTH__TOKENS:-}" ]]; then
  # shellcheck disable=SC2089,SC2090  # JSON: the quotes are meant literally
  BATON_AUTH__TOKENS='{"dev-alice": {"user": "alice", "groups": ["secops-oncall"], "roles": ["approver@secops", "operator@secops"]}, "dev-bob": {"user": "bob", "groups": ["secops-oncall", "it-managers"], "roles": ["approver@secops", "approver@it"]}, "dev-operator": {"user": "oscar", "groups": ["secops"], "roles": ["operator@secops"]}, "dev-author": {"user": "ada", "groups": ["secops"], "roles": ["author@secops"]}, "dev-viewer": {"user": "victor", "roles": ["viewer"]}, "dev-admin": {"user": "admin", "roles": ["admin"]}}'
fi
# shellcheck disable=SC2090
export BATON_AUTH__TOKENS
# The executor's SSRF guard refuses loopback; the local examples call local services.
export BATON_EXECUTOR_ALLOWED_NETWORKS="${BATON_EXECUTOR_ALLOWED_NETWORKS:-[\"127.0.0.1/32\"]}"

# The local world (examples/world) and how the services reach it: the EDR's webhook secret
# (ingest), the world's LLM, Slack and IdP token (executor), Slack with its signing secret
# and the people who may decide there (approvals). Every value can be overridden.
WORLD_URL="http://$BATON_HOST:${BATON_WORLD_HTTP_PORT:-${PORTS[world]}}"
export BATON_WORLD_INGEST_URL="${BATON_WORLD_INGEST_URL:-http://$BATON_HOST:${BATON_INGEST_HTTP_PORT:-8081}}"
export BATON_WORLD_APPROVALS_URL="${BATON_WORLD_APPROVALS_URL:-http://$BATON_HOST:${BATON_APPROVALS_HTTP_PORT:-8084}}"
export BATON_WORLD_EDR_WEBHOOK_SECRET="${BATON_WORLD_EDR_WEBHOOK_SECRET:-dev-edr-webhook-secret}"
export BATON_WORLD_LLM_API_KEY="${BATON_WORLD_LLM_API_KEY:-sk-world-llm-key}"
export BATON_WORLD_SLACK_BOT_TOKEN="${BATON_WORLD_SLACK_BOT_TOKEN:-xoxb-world-bot-token}"
export BATON_WORLD_SLACK_SIGNING_SECRET="${BATON_WORLD_SLACK_SIGNING_SECRET:-world-slack-signing-secret}"
export BATON_WORLD_IDP_TOKEN="${BATON_WORLD_IDP_TOKEN:-world-idp-token}"
export BATON_SECRET_EDR_WEBHOOK_SECRET="${BATON_SECRET_EDR_WEBHOOK_SECRET:-$BATON_WORLD_EDR_WEBHOOK_SECRET}"
export BATON_SECRET_WORLD_LLM_KEY="${BATON_SECRET_WORLD_LLM_KEY:-$BATON_WORLD_LLM_API_KEY}"
export BATON_SECRET_SLACK_BOT_TOKEN="${BATON_SECRET_SLACK_BOT_TOKEN:-$BATON_WORLD_SLACK_BOT_TOKEN}"
export BATON_SECRET_IDP_TOKEN="${BATON_SECRET_IDP_TOKEN:-$BATON_WORLD_IDP_TOKEN}"
# The stories that read their own audit trail (phishing-triage, evaluation) call as a viewer.
export BATON_SECRET_AUDIT_TOKEN="${BATON_SECRET_AUDIT_TOKEN:-dev-viewer}"
export BATON_SECRET_HARDWARE_FORM_TOKEN="${BATON_SECRET_HARDWARE_FORM_TOKEN:-dev-hardware-form-token}"
export BATON_SECRET_EVALUATION_TOKEN="${BATON_SECRET_EVALUATION_TOKEN:-dev-evaluation-token}"
export BATON_EXECUTOR_AI_PROVIDERS="${BATON_EXECUTOR_AI_PROVIDERS:-{\"default\": {\"kind\": \"openai\", \"base_url\": \"$WORLD_URL/llm/v1\", \"model\": \"world-analyst-1\", \"api_key_secret\": \"WORLD_LLM_KEY\"\}\}}"
export BATON_EXECUTOR_SLACK_API_URL="${BATON_EXECUTOR_SLACK_API_URL:-$WORLD_URL/slack/api}"
export BATON_APPROVALS_SLACK__API_URL="${BATON_APPROVALS_SLACK__API_URL:-$WORLD_URL/slack/api}"
export BATON_APPROVALS_SLACK__BOT_TOKEN="${BATON_APPROVALS_SLACK__BOT_TOKEN:-$BATON_WORLD_SLACK_BOT_TOKEN}"
export BATON_APPROVALS_SLACK__SIGNING_SECRET="${BATON_APPROVALS_SLACK__SIGNING_SECRET:-$BATON_WORLD_SLACK_SIGNING_SECRET}"
export BATON_APPROVALS_SLACK__CHANNEL="${BATON_APPROVALS_SLACK__CHANNEL:-#secops-approvals}"
if [[ -z "${BATON_APPROVALS_SLACK__GROUPS:-}" ]]; then
  BATON_APPROVALS_SLACK__GROUPS='{"alice": ["secops-oncall"], "bob": ["secops-oncall", "it-managers"]}'
fi
export BATON_APPROVALS_SLACK__GROUPS

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

port_of() { local var="BATON_${1^^}_HTTP_PORT"; printf '%s' "${!var:-${PORTS[$1]}}"; }
pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }
running() { local pid; pid="$(pid_of "$1")"; [[ -n "$pid" ]] && baton_pid_alive "$pid"; }
ready() { curl -fsS -m 2 "http://$BATON_HOST:$(port_of "$1")/readyz" >/dev/null 2>&1; }

start_one() {
  local name="$1" port
  port="$(port_of "$name")"
  if running "$name"; then
    say "$name already running (pid $(pid_of "$name"), port $port)"
    return
  fi
  if [[ -f "$RUN_DIR/$name.pid" ]]; then
    say "$name: stale pid file (process $(pid_of "$name") is gone); restarting"
    rm -f "$RUN_DIR/$name.pid"
  fi
  if baton_port_open "$port"; then
    die "$name: port $port is taken by $(baton_port_owner "$port"); set BATON_${name^^}_HTTP_PORT"
  fi
  [[ -x "$VENV_BIN/baton-$name" ]] || die "$VENV_BIN/baton-$name missing: run 'make install' first"
  export "BATON_${name^^}_HTTP_PORT=$port"
  setsid nohup "$VENV_BIN/baton-$name" >>"$BATON_LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  say "$name starting (pid $!, port $port)"
}

wait_ready() {
  local name="$1" waited=0
  until ready "$name"; do
    if ! running "$name"; then
      tail -n 30 "$BATON_LOG_DIR/$name.log" >&2 || true
      die "$name exited during start-up (log: $BATON_LOG_DIR/$name.log)"
    fi
    if (( waited >= READY_TIMEOUT )); then
      curl -sS -m 2 "http://$BATON_HOST:$(port_of "$name")/readyz" >&2 || true
      tail -n 30 "$BATON_LOG_DIR/$name.log" >&2 || true
      die "$name not ready after ${READY_TIMEOUT}s"
    fi
    sleep 1; waited=$((waited + 1))
    (( waited % 5 == 0 )) && say "waiting for $name (${waited}s)"
  done
  say "$name ready on http://$BATON_HOST:$(port_of "$name")"
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if [[ -z "$pid" ]] || ! baton_pid_alive "$pid"; then
    rm -f "$RUN_DIR/$name.pid"; say "$name not running"; return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do baton_pid_alive "$pid" || break; sleep 0.5; done
  if baton_pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$RUN_DIR/$name.pid"
  say "$name stopped (pid $pid)"
}

status_one() {
  local name="$1"
  if running "$name"; then
    if ready "$name"; then
      printf '%-10s ready     pid %-7s http://%s:%s\n' "$name" "$(pid_of "$name")" "$BATON_HOST" "$(port_of "$name")"
    else
      printf '%-10s NOT READY pid %-7s http://%s:%s/readyz\n' "$name" "$(pid_of "$name")" "$BATON_HOST" "$(port_of "$name")"
      return 1
    fi
  elif [[ -f "$RUN_DIR/$name.pid" ]]; then
    printf '%-10s STALE     pid file names dead process %s\n' "$name" "$(pid_of "$name")"; return 1
  else
    printf '%-10s stopped\n' "$name"; return 3
  fi
}

main() {
  local cmd="${1:-}"; shift || true
  local names=("$@"); (( ${#names[@]} )) || names=("${SERVICES[@]}")
  mkdir -p "$RUN_DIR" "$BATON_LOG_DIR"
  case "$cmd" in
    start) for n in "${names[@]}"; do start_one "$n"; done
           for n in "${names[@]}"; do wait_ready "$n"; done ;;
    stop) for n in "${names[@]}"; do stop_one "$n"; done ;;
    status) local rc=0; for n in "${names[@]}"; do status_one "$n" || rc=1; done; return "$rc" ;;
    logs) for n in "${names[@]}"; do printf '==> %s <==\n' "$n"; tail -n "${LINES_PER_LOG:-20}" "$BATON_LOG_DIR/$n.log" 2>/dev/null || echo "(no log yet)"; done ;;
    *) die "usage: $0 start|stop|status|logs [SERVICE...]" ;;
  esac
}

main "$@"
