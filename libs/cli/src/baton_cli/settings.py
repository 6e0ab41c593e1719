"""CLI settings: where the services and Kafka are (``BATON_*``)."""

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings

__all__ = ["CliSettings"]


class CliSettings(BatonSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATON_", env_nested_delimiter="__", extra="ignore"
    )

    approvals_url: str = "http://127.0.0.1:8084"
    audit_url: str = "http://127.0.0.1:8085"
    ingest_url: str = "http://127.0.0.1:8081"
    scheduler_url: str = "http://127.0.0.1:8082"
    executor_url: str = "http://127.0.0.1:8083"
    token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BATON_TOKEN", "token"),
        description="bearer token sent to every service API (ADR 0900)",
    )
    actor: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BATON_ACTOR", "actor"),
        description="who you are when publishing or approving story versions (`--as`); "
        "default: your login name",
    )
