"""Settings of the approvals service, read from ``BATON_APPROVALS_*`` (and shared ``BATON_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from baton_approvals.identity import Identity
from baton_common.settings import BatonSettings

__all__ = ["ApprovalsSettings"]


class ApprovalsSettings(BatonSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATON_APPROVALS_", env_nested_delimiter="__", extra="ignore"
    )

    http_port: int = 8084
    database_url: str = Field(
        "postgresql://baton:baton@127.0.0.1:55432/baton",
        validation_alias=AliasChoices("BATON_DATABASE_URL", "database_url"),
    )
    db_schema: str = Field(
        "approvals",
        validation_alias=AliasChoices("BATON_APPROVALS_SCHEMA", "db_schema"),
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding the service's tables (BATON_APPROVALS_SCHEMA)",
    )
    db_pool_size: int = Field(10, ge=1)
    group_id: str = "baton-approvals"
    tokens: dict[str, Identity] = Field(
        default_factory=dict,
        description='static bearer tokens, e.g. {"dev-alice": {"user": "alice", "groups": []}}',
    )
    publish_timeout_seconds: float = Field(
        15.0, gt=0, description="how long a decision waits for Kafka's acknowledgement"
    )
    retry_after_seconds: int = Field(5, ge=1, description="Retry-After when Kafka is unavailable")
