"""Settings of the ingest service, read from ``BATON_INGEST_*`` (and shared ``BATON_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings

__all__ = ["IngestSettings"]


class IngestSettings(BatonSettings):
    """Webhook intake limits and the ingest router's consumer."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_INGEST_", env_nested_delimiter="__", extra="ignore"
    )

    http_port: int = 8081
    max_body_bytes: int = Field(1024 * 1024, ge=1, description="larger webhook bodies get 413")
    publish_timeout_seconds: float = Field(
        10.0, gt=0, description="how long a webhook waits for Kafka's ack before 503"
    )
    max_in_flight: int = Field(
        1000, ge=1, description="webhook publishes awaiting Kafka at once; beyond it, 429"
    )
    webhook_linger_ms: int = Field(
        5,
        ge=0,
        le=1000,
        description="how long a webhook's record waits for others to share its produce "
        "request: fewer requests per webhook, more latency before the 202 (ADR 0240)",
    )
    webhook_batch_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="bytes of one partition's webhook records per produce batch: what "
        "arrives while the previous batch awaits its ack goes in one (ADR 0250)",
    )
    webhook_producers: int = Field(
        1,
        ge=1,
        le=4,
        description="Kafka producers (connections) the webhooks' batches share: with more "
        "than one, a partition's next batch need not wait for the previous one's ack "
        "(aiokafka keeps one produce request in flight per connection), for smaller "
        "batches (ADR 0260)",
    )
    retry_after_seconds: int = Field(1, ge=0, description="Retry-After sent with 429 and 503")
    max_ndjson_lines: int = Field(
        10_000, ge=1, description="events in one NDJSON body; more gets 422"
    )
    schedule_interval_seconds: float = Field(
        1.0, gt=0, description="how often the schedule loop looks for due ticks"
    )
    schedule_grace_seconds: float = Field(
        60.0, ge=0, description="a tick older than this when found was missed (catch_up)"
    )
    router_enabled: bool = Field(
        True, description="false: this process only takes webhooks; routers run elsewhere"
    )
    router_group: str = "baton-ingest-router"
    poll_timeout_ms: int = Field(1000, ge=1)
    router_batch_records: int = Field(
        5000,
        ge=1,
        description="records the router routes per batch: one wait for Kafka's acks and "
        "one offset commit per batch (ADR 0210)",
    )
    router_producer_batch_bytes: int = Field(
        512 * 1024,
        ge=1024,
        description="bytes of one partition's records per produce request of the router's "
        "own producer: a 5,000-record batch is a few requests, not hundreds of 16 KiB ones "
        "(ADR 0221); webhooks keep the default",
    )
    router_fetch_partition_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="bytes the router's consumer fetches per partition in one request",
    )
    router_fetch_min_bytes: int = Field(
        64 * 1024,
        ge=1,
        description="bytes the broker gathers before answering the router's fetch (or "
        "router_fetch_max_wait_ms passes): a trickle of webhooks is routed in fewer, larger "
        "batches (ADR 0230); 1 answers as soon as anything arrives",
    )
    router_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=10_000,
        description="the longest the broker holds the router's fetch waiting for "
        "router_fetch_min_bytes: the most routing waits for a quiet webhook path",
    )
    gc_threshold: int = Field(
        50_000,
        ge=0,
        description="objects of net growth between two young-generation collections "
        "(0: Python's default); webhooks and routed records free what they make by "
        "reference counting (ADR 0250)",
    )
    error_backoff_seconds: float = Field(1.0, ge=0, description="pause after a Kafka error")
