#!/usr/bin/env bash
# The whole local platform: Kafka, PostgreSQL, topics, example stories, five services and
# the local world of outside systems (examples/world).
#
#   deploy/local/stack.sh up|down|status|logs
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=deploy/local/env.sh
. "$HERE/env.sh"

BATON="$BATON_REPO_ROOT/.venv/bin/baton"
step() { printf '\n==> %s\n' "$*"; }

up() {
  step "Kafka"; "$HERE/kafka.sh" start
  step "PostgreSQL"; "$HERE/postgres.sh" start
  step "Topics"; "$BATON" topics provision
  step "Example stories"; "$BATON" stories publish --as make-up "$BATON_REPO_ROOT"/examples/stories/*.yaml
  # after the stories: a policy judges publishes made after it (ADR 0910)
  step "Example policies"; "$BATON" policy publish --as make-up "$BATON_REPO_ROOT"/examples/policies/*.yaml
  step "Services"; "$HERE/services.sh" start
  cat <<MSG

Baton is up.
  webhooks   http://$BATON_HOST:${BATON_INGEST_HTTP_PORT:-8081}/webhooks/<path>
  approvals  http://$BATON_HOST:${BATON_APPROVALS_HTTP_PORT:-8084}/approvals   (tokens: dev-alice, dev-bob, dev-operator, dev-viewer, dev-admin: docs/governance-identity.md)
  audit      http://$BATON_HOST:${BATON_AUDIT_HTTP_PORT:-8085}/runs
  world      http://$BATON_HOST:${BATON_WORLD_HTTP_PORT:-8090}/_calls   (EDR, IdP, Slack, LLM, …: baton world --help)
  scheduler  http://$BATON_HOST:${BATON_SCHEDULER_HTTP_PORT:-8082}/metrics
  executor   http://$BATON_HOST:${BATON_EXECUTOR_HTTP_PORT:-8083}/metrics
  Kafka      $BATON_KAFKA_BOOTSTRAP      PostgreSQL $BATON_DATABASE_URL
  logs       make logs   (files in $BATON_LOG_DIR)
MSG
}

down() {
  "$HERE/services.sh" stop
  "$HERE/kafka.sh" stop
  "$HERE/postgres.sh" stop
}

status() {
  local rc=0
  "$HERE/kafka.sh" status || rc=1
  "$HERE/postgres.sh" status || rc=1
  "$HERE/services.sh" status || rc=1
  if (( rc != 0 )); then
    echo "stack is not fully up (a part is stopped, stale or not ready): run 'make up'"
  fi
  return "$rc"
}

logs() {
  "$HERE/services.sh" logs
  printf '==> kafka <==\n'; tail -n "${LINES_PER_LOG:-20}" "$BATON_LOG_DIR/kafka.log" 2>/dev/null || echo "(no log yet)"
}

case "${1:-}" in
  up|down|status|logs) "$1" ;;
  *) echo "usage: $0 up|down|status|logs" >&2; exit 2 ;;
esac
