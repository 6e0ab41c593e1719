"""The scheduler's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "baton_scheduler_commands_total",
    "Commands processed, by command type and outcome (accepted, rejected, dlq).",
    ["type", "outcome"],
)
TRANSACTION_ABORTS = Counter(
    "baton_scheduler_transaction_aborts_total", "Kafka transactions aborted and replayed."
)
BATCH_SECONDS = Histogram(
    "baton_scheduler_batch_seconds", "Time to decide and commit one batch of commands."
)
RUNS_IN_MEMORY = Gauge("baton_scheduler_runs", "Runs held in memory by this instance.")
TIMERS_FIRED = Counter(
    "baton_scheduler_timers_fired_total", "FireTimer commands appended, by timer kind.", ["kind"]
)
TIMERS_PENDING = Gauge("baton_scheduler_timers_pending", "Timers the timer loop is watching.")
