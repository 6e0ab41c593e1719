"""Prometheus metrics of the ingest service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["IngestMetrics"]


class IngestMetrics:
    """Counters and histograms, registered in the registry ``main`` passes in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "baton_ingest_webhooks_accepted_total",
            "Webhooks accepted (durable in Kafka, answered 202)",
            registry=registry,
        )
        self.rejected = Counter(
            "baton_ingest_webhooks_rejected_total",
            "Webhooks refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "baton_ingest_publish_seconds",
            "Time for Kafka to acknowledge an accepted webhook",
            registry=registry,
        )
        self.routed = Counter(
            "baton_ingest_routed_total",
            "StartRun commands produced, by story",
            ["story"],
            registry=registry,
        )
        self.unmatched = Counter(
            "baton_ingest_unmatched_total",
            "Ingested events that started no run",
            registry=registry,
        )
        self.trigger_errors = Counter(
            "baton_ingest_trigger_errors_total",
            "Trigger conditions or dedup keys that failed to evaluate, by story and reason",
            ["story", "reason"],
            registry=registry,
        )
        self.schedule_ticks = Counter(
            "baton_ingest_schedule_ticks_total",
            "StartRun commands produced for schedule ticks by this replica, by story",
            ["story"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "baton_ingest_dead_letters_total",
            "Ingest records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
