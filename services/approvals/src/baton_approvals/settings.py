"""Settings of the approvals service, read from ``BATON_APPROVALS_*`` (and shared ``BATON_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings

__all__ = ["ApprovalsSettings", "InboxSettings", "SlackSettings"]


class SlackSettings(BaseModel):
    """The Slack channel (``BATON_APPROVALS_SLACK__<FIELD>``); on when both secrets are set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str = Field("https://slack.com/api", description="base URL of the Slack Web API")
    bot_token: SecretStr | None = Field(default=None, description="xoxb-… token of the app")
    signing_secret: SecretStr | None = Field(
        default=None, description="verifies X-Slack-Signature of interaction callbacks"
    )
    channel: str | None = Field(default=None, description="where gates are posted by default")
    channels: dict[str, str] = Field(
        default_factory=dict,
        description="approver entry (`group:secops`, `alice`) → channel; the first match wins",
    )
    users: dict[str, str] = Field(
        default_factory=dict,
        description="Slack user id → Baton user; others are known by their users.info email",
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Baton user (or email) → their groups, for Slack users"
    )
    replay_window_seconds: int = Field(
        300, ge=1, description="how old a callback's timestamp may be"
    )
    poll_seconds: float = Field(0.5, gt=0, description="how often the notifier looks for work")
    timeout_seconds: float = Field(10.0, gt=0, description="per Slack API call")

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and self.signing_secret is not None


class InboxSettings(BaseModel):
    """The web inbox (``BATON_APPROVALS_INBOX__<FIELD>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    secure_cookie: bool = Field(
        False, description="mark the session cookie Secure (set when served over HTTPS)"
    )
    history_limit: int = Field(20, ge=1, le=500)


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
    deny_requires_comment: bool = Field(False, description="refuse a deny without a comment")
    publish_timeout_seconds: float = Field(
        15.0, gt=0, description="how long a decision waits for Kafka's acknowledgement"
    )
    retry_after_seconds: int = Field(5, ge=1, description="Retry-After when Kafka is unavailable")
    slack: SlackSettings = Field(default_factory=SlackSettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
