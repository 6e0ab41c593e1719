"""Settings of the audit service, read from ``BATON_AUDIT_*`` (and shared ``BATON_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings

__all__ = ["AuditSettings"]


class AuditSettings(BatonSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATON_AUDIT_", env_nested_delimiter="__", extra="ignore"
    )

    http_port: int = 8085
    database_url: str = Field(
        "postgresql://baton:baton@127.0.0.1:55432/baton",
        validation_alias=AliasChoices("BATON_DATABASE_URL", "database_url"),
    )
    db_schema: str = Field(
        "audit",
        validation_alias=AliasChoices("BATON_AUDIT_SCHEMA", "db_schema"),
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the service's tables (BATON_AUDIT_SCHEMA)",
    )
    db_pool_size: int = Field(10, ge=1)
    batch_records: int = Field(
        3000,
        ge=1,
        description="most records one poll hands to the projection, over all partitions; "
        "each partition's share is applied in one transaction (fewer, larger transactions "
        "cost PostgreSQL less per event)",
    )
    kept_runs: int = Field(
        20_000,
        ge=0,
        description="runs whose rows the projection keeps in memory between batches, so a "
        "batch reads only their event counts from PostgreSQL (0: read every row in full); "
        "a kept run of 6-10 events takes about 7 KB, so 20,000 take about 140 MB",
    )
    gc_threshold: int = Field(
        200_000,
        ge=0,
        description="objects of net growth between two young-generation collections "
        "(Python's default is 700, which a batch's records set off dozens of times, each "
        "walking the batch again); above what the batches in flight hold at once (three "
        "partitions' shares of a poll and the poll taken ahead), so they are freed before "
        "a collection walks them; 0 keeps Python's default (ADRs 0550, 0570)",
    )
    group_id: str = "baton-audit"
    publish_timeout_seconds: float = Field(
        15.0, gt=0, description="how long a dead letter waits for Kafka's acknowledgement"
    )
