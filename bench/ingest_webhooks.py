"""The webhooks ``bench/ingest.py`` sends, and what a load of them came to (ADR 0261).

Distinct alerts (each its own dedup key), signed as a GitHub-style sender signs them
(``X-Hub-Signature-256: sha256=<HMAC of the body>``), built before a load starts so that
no generator signs while it measures.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from pydantic import JsonValue

from baton_ingest.signature import sign

__all__ = [
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "Load",
    "Webhook",
    "signed_webhooks",
    "webhooks_for",
]

SECRET = "bench-webhook-secret"
SECRET_ENV = {"BATON_SECRET_BENCH": SECRET}  # the story's `signature: {secret: BENCH}`
SIGNATURE_HEADER = "X-Hub-Signature-256"


class Webhook(NamedTuple):
    """One webhook to send: its body and its signature header's value."""

    body: bytes
    signature: str


class Load(NamedTuple):
    """One load's outcome: its printed line, what a rate search compares, and the CPU
    seconds the generator used while it ran."""

    line: str
    accepted: int
    sent: int
    p99_ms: float
    generator_cpu: float
    generator_system_cpu: float  # of generator_cpu, in the kernel (mostly loopback TCP)


def signed_webhooks(alert: dict[str, JsonValue], count: int, run: str) -> list[Webhook]:
    """``count`` copies of ``alert``, each with its own ``alert_id`` (``run``-numbered),
    signed with the bench's secret."""
    key = SECRET.encode()
    webhooks = []
    for n in range(count):
        body = json.dumps({**alert, "alert_id": f"{run}-{n:07d}"}).encode()
        webhooks.append(Webhook(body, sign(body, key)))
    return webhooks


def webhooks_for(
    rate: float, seconds: float, run: str, alert: dict[str, JsonValue]
) -> list[Webhook]:
    """Enough distinct webhooks for one load: all it sends at ``rate`` (with a margin),
    or, for a closed loop, 6,000/s (sent round again if the loop is faster)."""
    count = int((rate or 6_000) * (seconds + 1)) + 100
    return signed_webhooks(alert, count, run)
