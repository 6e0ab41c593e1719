"""Settings shared by every service, read from ``BATON_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from baton_common.auth.settings import AuthSettings

__all__ = ["BatonSettings", "TopicSettings"]


class TopicSettings(BaseModel):
    """Topic names and layout (DESIGN.md "Topics"); set as ``BATON_TOPICS__<FIELD>``."""

    stories: str = "baton.stories"
    ingest: str = "baton.ingest"
    commands: str = "baton.commands"
    runs: str = "baton.runs"
    tasks_prefix: str = "baton.tasks."
    approvals: str = "baton.tasks.approvals"
    dlq: str = "baton.dlq"
    schedules: str = Field(
        "baton.schedules", description="compacted: the last tick fired per scheduled story"
    )
    policies: str = Field(
        "baton.policies", description="compacted: every published policy version (ADR 0910)"
    )
    snapshots: str = Field(
        "baton.snapshots", description="compacted; the scheduler's run-state snapshots"
    )
    task_queues: list[str] = Field(default_factory=lambda: ["default"])
    partitions: int = Field(6, ge=1, description="baton.commands, baton.runs and task topics")
    ingest_partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    ingest_retention_ms: int = 7 * 86_400_000
    commands_retention_ms: int = 7 * 86_400_000
    runs_retention_ms: int = -1
    tasks_retention_ms: int = 7 * 86_400_000
    dlq_retention_ms: int = 30 * 86_400_000

    def task_topic(self, queue: str) -> str:
        return f"{self.tasks_prefix}{queue}"


class BatonSettings(BaseSettings):
    """Base of every service's settings; subclasses add an ``env_prefix`` of their own."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("BATON_KAFKA_BOOTSTRAP", "kafka_bootstrap"),
    )
    topics: TopicSettings = Field(
        default_factory=TopicSettings,
        validation_alias=AliasChoices("BATON_TOPICS", "topics"),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=AliasChoices("BATON_LOG_LEVEL", "log_level")
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        validation_alias=AliasChoices("BATON_AUTH", "auth"),
        description="who may call the HTTP APIs (ADR 0900); `BATON_AUTH__TOKENS` etc.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8080
