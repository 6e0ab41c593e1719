"""Webhook authentication: HMAC-SHA256 signatures (plain, timestamped, presets) and bearer tokens.

Pure functions over the request's headers and raw body; the current time is passed in.
A plain signature is ``<prefix><hex HMAC of the body>``. With a timestamp header the HMAC
covers ``<timestamp>.<body>`` (``v0:<timestamp>:<body>`` for the Slack preset).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from datetime import datetime
from enum import StrEnum

from baton_common.triggers import Signature

__all__ = [
    "ReplayCache",
    "SignatureCheck",
    "TokenCheck",
    "sign",
    "signed_content",
    "verify_bearer",
    "verify_signature",
]


class SignatureCheck(StrEnum):
    """The outcome of checking one signature."""

    VALID = "valid"
    MISSING = "missing"
    WRONG_PREFIX = "wrong_prefix"
    MISMATCH = "mismatch"
    TIMESTAMP_MISSING = "timestamp_missing"
    TIMESTAMP_INVALID = "timestamp_invalid"
    STALE = "stale"


class TokenCheck(StrEnum):
    """The outcome of checking a bearer token."""

    VALID = "valid"
    MISSING = "missing"
    MISMATCH = "mismatch"


def signed_content(body: bytes, timestamp: str | None, *, slack_style: bool = False) -> bytes:
    """The bytes a sender signs: the body, or the timestamp joined to it."""
    if timestamp is None:
        return body
    if slack_style:
        return b"v0:" + timestamp.encode() + b":" + body
    return timestamp.encode() + b"." + body


def sign(
    body: bytes,
    key: bytes,
    prefix: str = "sha256=",
    *,
    timestamp: str | None = None,
    slack_style: bool = False,
) -> str:
    """The signature header value a sender computes for ``body`` (and ``timestamp``)."""
    content = signed_content(body, timestamp, slack_style=slack_style)
    return prefix + hmac.new(key, content, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    provided: str | None,
    *,
    key: bytes,
    prefix: str,
    timestamp: str | None = None,
    spec: Signature | None = None,
    now: datetime | None = None,
) -> SignatureCheck:
    """Check a signature header value against the raw body, in constant time.

    When ``spec`` has a timestamp header, ``timestamp`` (that header's value) must be a
    Unix time within ``spec.tolerance`` of ``now`` and is part of the signed content.
    """
    if provided is None or not provided.strip():
        return SignatureCheck.MISSING
    provided = provided.strip()
    if not provided.startswith(prefix):
        return SignatureCheck.WRONG_PREFIX
    signed_timestamp: str | None = None
    if spec is not None and spec.timestamp_header is not None:
        if timestamp is None or not timestamp.strip():
            return SignatureCheck.TIMESTAMP_MISSING
        signed_timestamp = timestamp.strip()
        try:
            seconds = int(signed_timestamp)
        except ValueError:
            return SignatureCheck.TIMESTAMP_INVALID
        if now is None or abs(now.timestamp() - seconds) > spec.tolerance.total_seconds():
            return SignatureCheck.STALE
    content = signed_content(
        body, signed_timestamp, slack_style=spec is not None and spec.preset == "slack"
    )
    digest = provided[len(prefix) :].lower().encode("utf-8", errors="replace")
    expected = hmac.digest(key, content, "sha256").hex().encode()  # one call into OpenSSL
    if hmac.compare_digest(digest, expected):
        return SignatureCheck.VALID
    return SignatureCheck.MISMATCH


def verify_bearer(authorization: str | None, *, token: str) -> TokenCheck:
    """Check an ``Authorization: Bearer <token>`` header in constant time."""
    if authorization is None:
        return TokenCheck.MISSING
    scheme, _, provided = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not provided.strip():
        return TokenCheck.MISSING
    if hmac.compare_digest(provided.strip().encode(), token.encode()):
        return TokenCheck.VALID
    return TokenCheck.MISMATCH


class ReplayCache:
    """Timestamped signatures already accepted, kept while their timestamp is within tolerance.

    Per process and bounded: a replay that reaches another replica inside the tolerance is
    not caught here (the trigger's dedup key is the defence across replicas).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries

    def seen(self, signature: str, now: float) -> bool:
        """Whether ``signature`` was accepted before and has not yet expired."""
        self._expire(now)
        return signature in self._seen

    def remember(self, signature: str, expires_at: float, now: float) -> None:
        """Remember an accepted signature until ``expires_at`` (Unix time)."""
        self._expire(now)
        self._seen[signature] = expires_at
        self._seen.move_to_end(signature)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Entries are appended in acceptance order; expiry order is close enough that
        # sweeping from the oldest end and stopping at the first live entry bounds the work.
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[key]
