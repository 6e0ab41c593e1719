"""Settings of the world, read from ``BATON_WORLD_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WorldSettings"]


class WorldSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BATON_WORLD_", env_nested_delimiter="__", extra="ignore"
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8090
    ingest_url: str = Field("http://127.0.0.1:8081", description="where the EDR sends webhooks")
    edr_webhook_path: str = "edr-alerts"
    edr_webhook_secret: str = Field(
        "dev-edr-webhook-secret", description="HMAC key shared with ingest (EDR_WEBHOOK_SECRET)"
    )
    approvals_url: str = Field(
        "http://127.0.0.1:8084", description="where Slack sends interaction callbacks"
    )
    slack_bot_token: str = "xoxb-world-bot-token"
    slack_signing_secret: str = "world-slack-signing-secret"
    slack_emails: dict[str, str] = Field(
        default_factory=lambda: {
            "U0ALICE": "alice",
            "U0BOB": "bob",
            "U0CAROL": "carol",
        },
        description="Slack user id → the email users.info shows (Baton users locally)",
    )
    llm_api_key: str = "sk-world-llm-key"
    idp_token: str = "world-idp-token"
    max_calls: int = Field(200_000, ge=1, description="recorded calls kept (oldest dropped)")
