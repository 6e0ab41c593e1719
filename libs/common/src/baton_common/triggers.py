"""Story triggers: what starts a run (a webhook or a schedule), its condition and dedup key.

Webhook authentication is one of: an HMAC-SHA256 signature (``signature``, with presets for
the GitHub-style and Slack-style schemes and optional timestamp replay protection) or a
shared bearer secret (``bearer``). Secrets are always referenced by name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from baton_common.durations import Duration

__all__ = [
    "SIGNATURE_PRESETS",
    "Bearer",
    "CatchUp",
    "Dedup",
    "ScheduleTrigger",
    "Signature",
    "SignaturePreset",
    "Trigger",
    "WebhookTrigger",
]

_PATH = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

SignaturePreset = Literal["github", "slack"]
CatchUp = Literal["latest", "all", "none"]

SIGNATURE_PRESETS: dict[str, dict[str, str]] = {
    # GitHub: X-Hub-Signature-256: sha256=<hex HMAC of the body>
    "github": {"header": "X-Hub-Signature-256", "prefix": "sha256="},
    # Slack: X-Slack-Signature: v0=<hex HMAC of "v0:<timestamp>:<body>">
    "slack": {
        "header": "X-Slack-Signature",
        "prefix": "v0=",
        "timestamp_header": "X-Slack-Request-Timestamp",
    },
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Signature(_Model):
    """HMAC-SHA256 webhook signature check; the secret is referenced by name.

    Without ``timestamp_header`` the HMAC covers the raw body. With it, the sender puts
    the Unix time in that header and signs ``<timestamp>.<body>`` (``v0:<timestamp>:<body>``
    for the Slack preset); requests whose timestamp is further than ``tolerance`` from
    now are refused as stale, and a signature seen before within the tolerance as replayed.
    A ``preset`` fills in the header, prefix and timestamp header of a well-known scheme;
    fields given explicitly win.
    """

    secret: str = Field(description="name of the secret holding the HMAC key")
    preset: SignaturePreset | None = Field(
        default=None, description="github or slack: the scheme's header, prefix and timestamp"
    )
    header: str = "X-Baton-Signature"
    prefix: str = "sha256="
    timestamp_header: str | None = Field(
        default=None, description="header carrying the Unix time the sender signed at"
    )
    tolerance: Duration = Field(
        default=timedelta(minutes=5), description="how far a signed timestamp may be from now"
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("preset") in SIGNATURE_PRESETS:
            return {**SIGNATURE_PRESETS[data["preset"]], **data}
        return data


class Bearer(_Model):
    """A shared secret sent as ``Authorization: Bearer <secret>``; referenced by name."""

    secret: str = Field(description="name of the secret holding the expected token")


class WebhookTrigger(_Model):
    path: Annotated[str, Field(pattern=_PATH)]
    signature: Signature | None = None
    bearer: Bearer | None = None
    http: bool = Field(
        default=True,
        description="false: only Kafka-native records with this source; HTTP answers 404",
    )

    @model_validator(mode="after")
    def _one_auth(self) -> WebhookTrigger:
        if self.signature is not None and self.bearer is not None:
            raise ValueError("a webhook takes `signature` or `bearer`, not both")
        return self


class ScheduleTrigger(_Model):
    """Start the story on a clock: a cron expression in a timezone, or every fixed interval.

    Each tick starts at most one run whatever the number of ingest replicas (the run id is
    derived from the story and the tick time, so the scheduler deduplicates). ``catch_up``
    says what happens to ticks missed while no ingest was running: ``latest`` fires the most
    recent missed tick, ``all`` fires every missed tick, ``none`` fires none.
    """

    cron: str | None = Field(
        default=None,
        description='five-field cron, e.g. "*/5 * * * *"; an optional sixth field is seconds',
    )
    every: Duration | None = Field(default=None, description="fixed interval, e.g. 10m")
    timezone: str = Field(default="UTC", description="IANA zone the cron fields are read in")
    catch_up: CatchUp = "latest"
    dedup_window: Duration = Field(
        default=timedelta(days=1),
        description="how long the scheduler remembers a tick's run, folding repeats into it",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_clock(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule takes exactly one of `cron` or `every`")
        if self.every is not None and self.every < timedelta(seconds=1):
            raise ValueError("`every` must be at least 1s")
        if self.cron is not None and (
            len(self.cron.split()) not in (5, 6) or not croniter.is_valid(self.cron)
        ):
            raise ValueError(
                f"cron {self.cron!r} is not valid: five fields (minute hour day month "
                "weekday), optionally a sixth for seconds"
            )
        return self


class Dedup(_Model):
    key: str = Field(description="template rendered over the event; equal keys start one run")
    window: Duration = timedelta(hours=1)


class Trigger(_Model):
    webhook: WebhookTrigger | None = None
    schedule: ScheduleTrigger | None = None
    when: str | None = Field(default=None, description="condition over `event`")
    dedup: Dedup | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Trigger:
        if (self.webhook is None) == (self.schedule is None):
            raise ValueError("a trigger has exactly one of `webhook` or `schedule`")
        return self
