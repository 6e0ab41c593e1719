"""The scheduler's Prometheus metrics."""

from collections.abc import Mapping, Sequence

from prometheus_client import Counter, Gauge, Histogram

from baton_common.envelope import Envelope
from baton_common.metrics import labelled
from baton_common.state import RunState

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
BATCH_STAGE_SECONDS = Histogram(
    "baton_scheduler_batch_stage_seconds",
    "Time of each stage of a command batch's transaction: decide (decode, decide, journal,"
    " build the records), offsets (the consumer offsets joined the transaction, after"
    " decide), produce (records sent and acknowledged), snapshot,"
    " commit (EndTxn).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
)
RUNS_IN_MEMORY = Gauge("baton_scheduler_runs", "Runs held in memory by this instance.")
TIMERS_FIRED = Counter(
    "baton_scheduler_timers_fired_total", "FireTimer commands appended, by timer kind.", ["kind"]
)
TIMERS_PENDING = Gauge("baton_scheduler_timers_pending", "Timers the timer loop is watching.")

# Run and step outcomes, counted from the events each command produced. A batch whose
# transaction aborts is replayed, so its events may be counted twice (rare; see ADR 0800).
RUNS_STARTED = Counter("baton_runs_started_total", "Runs started, by story.", ["story"])
RUNS_FINISHED = Counter(
    "baton_runs_finished_total",
    "Runs finished, by story and outcome (succeeded, failed, cancelled).",
    ["story", "outcome"],
)
RUN_SECONDS = Histogram(
    "baton_run_duration_seconds",
    "Time from a run's start to its end (log time), by story.",
    ["story"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400),
)
DEDUP_HITS = Counter(
    "baton_runs_deduplicated_total",
    "StartRun commands answered as duplicates, by story.",
    ["story"],
)
STEP_DISPATCHES = Counter(
    "baton_step_dispatches_total",
    "Step attempts dispatched, by story and action kind.",
    ["story", "action"],
)
STEP_RETRIES = Counter(
    "baton_step_retries_total",
    "Failed step attempts that will be retried, by story and error kind.",
    ["story", "kind"],
)
APPROVALS_REQUESTED = Counter(
    "baton_approvals_requested_total", "Approval gates opened, by story.", ["story"]
)
APPROVALS_DECIDED = Counter(
    "baton_approvals_decided_total",
    "Approval gates closed, by story and decision (granted, denied).",
    ["story", "decision"],
)
COMMAND_LATENCY = Histogram(
    "baton_scheduler_command_latency_seconds",
    "Time from a command's append to baton.commands to its decision.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_FINISHED = {
    "baton.run.succeeded.v1": "succeeded",
    "baton.run.failed.v1": "failed",
    "baton.run.cancelled.v1": "cancelled",
}


def observe_events(events: Sequence[Envelope], states: Mapping[str, RunState]) -> None:
    """Count the run, step and approval outcomes among a command's journaled events."""
    for event in events:
        kind = event.type
        story = event.storyid or "unknown"
        if kind == "baton.run.started.v1":
            labelled(RUNS_STARTED, story).inc()
        elif kind in _FINISHED:
            labelled(RUNS_FINISHED, story, _FINISHED[kind]).inc()
            state = states.get(event.subject or "")
            if state is not None:
                labelled(RUN_SECONDS, story).observe(
                    max(0.0, (event.time - state.started_at).total_seconds())
                )
        elif kind == "baton.run.deduplicated.v1":
            labelled(DEDUP_HITS, story).inc()
        elif kind == "baton.step.dispatched.v1":
            labelled(STEP_DISPATCHES, story, str(event.data.get("action"))).inc()
        elif kind == "baton.step.failed.v1" and event.data.get("will_retry") is True:
            labelled(STEP_RETRIES, story, str(event.data.get("error_kind"))).inc()
        elif kind == "baton.approval.requested.v1":
            labelled(APPROVALS_REQUESTED, story).inc()
        elif kind == "baton.approval.granted.v1":
            labelled(APPROVALS_DECIDED, story, "granted").inc()
        elif kind == "baton.approval.denied.v1":
            labelled(APPROVALS_DECIDED, story, "denied").inc()
