"""Prometheus metrics of the approvals service (``baton_approvals_*``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_FAILURES",
    "DECISIONS",
    "DECISION_SECONDS",
    "POSITION",
    "RECORDS",
    "SLACK_CALLBACKS",
    "SLACK_CALLS",
]

RECORDS: Final = Counter(
    "baton_approvals_records",
    "Records read from the approvals topic, by outcome",
    ["outcome"],  # applied | duplicate | dead_lettered
)
BATCH_FAILURES: Final = Counter(
    "baton_approvals_batch_failures",
    "Batches rolled back after an error and retried from their first record",
)
POSITION: Final = Gauge(
    "baton_approvals_consumer_next_offset",
    "Next offset to apply, per partition, as stored with the projection",
    ["topic", "partition"],
)
DECISIONS: Final = Counter(
    "baton_approvals_decisions",
    "Decision requests answered by the API, by outcome",
    ["outcome", "channel"],  # accepted | forbidden | conflict | invalid | not_found | unavailable
)
SLACK_CALLBACKS: Final = Counter(
    "baton_approvals_slack_callbacks",
    "Slack interaction callbacks, by outcome",
    ["outcome"],  # forged | replayed | decided | refused | modal | ignored
)
SLACK_CALLS: Final = Counter(
    "baton_approvals_slack_calls",
    "Slack Web API calls, by method and outcome",
    ["method", "outcome"],  # ok | error
)
DECISION_SECONDS: Final = Histogram(
    "baton_approvals_decision_latency_seconds",
    "Time from a gate's opening to a person's decision being recorded",
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400, 43200, 86400, 259200),
)
