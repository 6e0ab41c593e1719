"""Story triggers: what starts a run (webhooks today), its condition and dedup key."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from baton_common.durations import Duration

__all__ = ["Dedup", "Signature", "Trigger", "WebhookTrigger"]

_PATH = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Signature(_Model):
    """HMAC-SHA256 webhook signature check; the secret is referenced by name."""

    secret: str = Field(description="name of the secret holding the HMAC key")
    header: str = "X-Baton-Signature"
    prefix: str = "sha256="


class WebhookTrigger(_Model):
    path: Annotated[str, Field(pattern=_PATH)]
    signature: Signature | None = None


class Dedup(_Model):
    key: str = Field(description="template rendered over the event; equal keys start one run")
    window: Duration = timedelta(hours=1)


class Trigger(_Model):
    webhook: WebhookTrigger
    when: str | None = Field(default=None, description="condition over `event`")
    dedup: Dedup | None = None
