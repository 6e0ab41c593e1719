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

# Run and step outcomes, counted from the events each command produced. Like the command
# counts, they go through the batch's Tally: counted once its transaction commits (ADR 0183).
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


class Tally:
    """One batch's counts and observations, held until its transaction commits (ADR 0183).

    A batch whose transaction aborts is decided again, and one whose producer is fenced is
    decided by the next owner: counting while deciding counted those twice. ``count`` and
    ``observe`` only note the increment (a dict increment, a list append); ``apply`` adds
    them to the metrics after the commit; a tally not applied is dropped with its batch.
    """

    __slots__ = ("counts", "observed")

    def __init__(self) -> None:
        self.counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
        self.observed: list[tuple[Histogram, tuple[str, ...], float]] = []

    def count(self, metric: Counter, *labels: str) -> None:
        """One more of ``metric`` with these label values (none for an unlabelled one)."""
        key = (metric, labels)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def observe(self, metric: Histogram, value: float, *labels: str) -> None:
        """One observation of ``metric`` with these label values."""
        self.observed.append((metric, labels, value))

    def apply(self) -> None:
        """Add the tally to the metrics (its batch committed) and empty it."""
        for (metric, labels), n in self.counts.items():
            (labelled(metric, *labels) if labels else metric).inc(n)
        for histogram, labels, value in self.observed:
            (labelled(histogram, *labels) if labels else histogram).observe(value)
        self.counts.clear()
        self.observed.clear()


def observe_events(
    tally: Tally, events: Sequence[Envelope], states: Mapping[str, RunState]
) -> None:
    """Tally the run, step and approval outcomes among a command's journaled events."""
    for event in events:
        kind = event.type
        story = event.storyid or "unknown"
        if kind == "baton.run.started.v1":
            tally.count(RUNS_STARTED, story)
        elif kind in _FINISHED:
            tally.count(RUNS_FINISHED, story, _FINISHED[kind])
            state = states.get(event.subject or "")
            if state is not None:
                seconds = (event.time - state.started_at).total_seconds()
                tally.observe(RUN_SECONDS, max(0.0, seconds), story)
        elif kind == "baton.run.deduplicated.v1":
            tally.count(DEDUP_HITS, story)
        elif kind == "baton.step.dispatched.v1":
            tally.count(STEP_DISPATCHES, story, str(event.data.get("action")))
        elif kind == "baton.step.failed.v1" and event.data.get("will_retry") is True:
            tally.count(STEP_RETRIES, story, str(event.data.get("error_kind")))
        elif kind == "baton.approval.requested.v1":
            tally.count(APPROVALS_REQUESTED, story)
        elif kind == "baton.approval.granted.v1":
            tally.count(APPROVALS_DECIDED, story, "granted")
        elif kind == "baton.approval.denied.v1":
            tally.count(APPROVALS_DECIDED, story, "denied")
