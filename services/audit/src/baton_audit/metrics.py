"""Prometheus metrics of the audit service (``baton_audit_*``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BATCH_FAILURES", "EVENTS", "FRESHNESS", "POSITION", "RECORDS"]

RECORDS: Final = Counter(
    "baton_audit_records",
    "Records read from the run event log, by outcome",
    ["outcome"],  # applied | duplicate | dead_lettered
)
EVENTS: Final = Counter(
    "baton_audit_events",
    "Run events stored, by whether their payload is a known event contract",
    ["known"],  # true | false
)
BATCH_FAILURES: Final = Counter(
    "baton_audit_batch_failures",
    "Batches rolled back after an error and retried from their first record",
)
POSITION: Final = Gauge(
    "baton_audit_consumer_next_offset",
    "Next offset to apply, per partition, as stored with the projection",
    ["topic", "partition"],
)
FRESHNESS: Final = Histogram(
    "baton_audit_freshness_seconds",
    "Time from a record's append to Kafka (its timestamp) to its commit in the audit store,"
    " where the API can read it",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0),
)
