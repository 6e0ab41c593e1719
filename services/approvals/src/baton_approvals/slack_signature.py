"""Slack's request signing: ``v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")``."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SignatureError", "sign", "verify"]


class SignatureError(Exception):
    """A callback is not from Slack, or too old; the message says why."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends for ``body`` at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    window_seconds: int,
) -> None:
    """Check a callback's signature and that its timestamp is within the window of ``now``.

    Raises:
        SignatureError: when a header is missing, the timestamp is stale or in the
            future, or the signature does not match.
    """
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise SignatureError("X-Slack-Request-Timestamp is not a number") from exc
    if abs(now - sent) > window_seconds:
        raise SignatureError(f"stale request: timestamp is more than {window_seconds}s from now")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise SignatureError("signature mismatch")
