"""Prometheus metrics of the approvals service (``baton_approvals_*``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

__all__ = ["BATCH_FAILURES", "DECISIONS", "POSITION", "RECORDS"]

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
    ["outcome"],  # accepted | forbidden | conflict | not_found | unavailable
)
