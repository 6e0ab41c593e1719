"""Settings of the executor, read from ``BATON_EXECUTOR_*`` (and shared ``BATON_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from baton_common.settings import BatonSettings
from baton_executor.actions.ai.providers import ProviderSettings
from baton_executor.actions.email import SmtpSettings
from baton_executor.actions.mcp import McpServerSettings

__all__ = ["ExecutorSettings"]


class ExecutorSettings(BatonSettings):
    """Which task queues this pool serves, and how much work it runs at once."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_EXECUTOR_", env_nested_delimiter="__", extra="ignore"
    )

    http_port: int = 8083
    queues: list[str] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        description='task queues served, as JSON: BATON_EXECUTOR_QUEUES=\'["default","ai"]\'',
    )
    group_id: str = "baton-executor"
    concurrency: int = Field(16, ge=1, description="step attempts running at once")
    max_action_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="upper bound of an action's own timeout; keeps each attempt well inside "
        "the consumer's max poll interval",
    )
    max_response_bytes: int = Field(
        256 * 1024, ge=0, description="HTTP response bodies beyond this are truncated"
    )
    max_output_bytes: int = Field(
        512 * 1024,
        ge=1,
        description="a larger step output fails the attempt (it must fit a Kafka record)",
    )
    revoke_grace_seconds: float = Field(
        5.0, ge=0, description="how long a rebalance waits for running attempts to finish"
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="how long shutdown waits for running attempts to finish"
    )
    poll_timeout_ms: int = Field(1000, ge=1)
    error_backoff_seconds: float = Field(1.0, ge=0, description="pause after a Kafka error")
    recent_attempts: int = Field(
        10_000, ge=0, description="reported attempt ids remembered to skip redeliveries"
    )
    gc_threshold: int = Field(
        50_000,
        ge=0,
        description="objects of net growth between two young-generation collections once "
        "start-up is done (0: Python's default, 700, which walked the attempts in flight "
        "again and again, ADR 0340)",
    )
    secrets_dir: Path | None = Field(
        None, description="directory of mounted secret files (one file per secret name)"
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="non-public networks (CIDR) outbound requests may reach, as JSON: "
        "BATON_EXECUTOR_ALLOWED_NETWORKS='[\"127.0.0.1/32\"]'; everything else that is "
        "loopback, link-local or private is refused (SSRF guard)",
    )
    per_host_concurrency: int = Field(8, ge=1, description="requests at once to one host")
    breaker_threshold: int = Field(
        5, ge=1, description="consecutive retryable failures that open a host's circuit"
    )
    breaker_reset_seconds: float = Field(
        30.0, gt=0, description="how long a circuit stays open before a probe may pass"
    )
    ai_providers: dict[str, ProviderSettings] = Field(
        default_factory=dict,
        description="model providers by name, as JSON: BATON_EXECUTOR_AI_PROVIDERS="
        '\'{"default": {"kind": "openai", "base_url": "https://…/v1", "model": "…", '
        '"api_key_secret": "OPENAI_API_KEY"}}\'',
    )
    ai_default_provider: str = Field("default", description="provider of steps naming none")
    slack_api_url: str = Field("https://slack.com/api", description="Slack Web API base URL")
    slack_token_secret: str = Field(
        "SLACK_BOT_TOKEN", description="name of the secret holding the Slack bot token"
    )
    smtp: SmtpSettings = Field(
        default_factory=SmtpSettings,
        description="mail server of notify.email (BATON_EXECUTOR_SMTP__HOST, …)",
    )
    http_transport: Literal["aiohttp", "httpcore"] = Field(
        "aiohttp",
        description="what carries outbound HTTP: aiohttp (several times the throughput at "
        "high concurrency, ADR 0302; the http action calls it directly, ADR 0320) or httpx's "
        "own httpcore",
    )
    http_lean: bool = Field(
        True,
        description="with the aiohttp transport, the http action sends plain-HTTP requests of "
        "the usual shape over its own lean HTTP/1.1 client (ADR 0330); HTTPS and the rest "
        "go to aiohttp",
    )
    mcp_servers: dict[str, McpServerSettings] = Field(
        default_factory=dict,
        description="MCP servers agents and mcp.call may use, by name, as JSON: "
        '\'{"edr": {"url": "https://…/mcp"}, "files": {"command": ["mcp-files"]}}\'',
    )
