"""Which way the in-memory intake apps answer webhooks (see ``conftest.webhook_path``)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Literal

WEBHOOK_PATH: ContextVar[Literal["fast path", "route"] | str] = ContextVar(
    "webhook_path", default="fast path"
)
