"""HMAC-SHA256 webhook signatures: ``<prefix><hex digest of the raw body>`` in a header."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

__all__ = ["SignatureCheck", "sign", "verify_signature"]


class SignatureCheck(StrEnum):
    """The outcome of checking one signature header."""

    VALID = "valid"
    MISSING = "missing"
    WRONG_PREFIX = "wrong_prefix"
    MISMATCH = "mismatch"


def sign(body: bytes, key: bytes, prefix: str = "sha256=") -> str:
    """The header value a sender computes for ``body``."""
    return prefix + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes, provided: str | None, *, key: bytes, prefix: str
) -> SignatureCheck:
    """Check a signature header value against the raw body, in constant time."""
    if provided is None or not provided.strip():
        return SignatureCheck.MISSING
    provided = provided.strip()
    if not provided.startswith(prefix):
        return SignatureCheck.WRONG_PREFIX
    digest = provided[len(prefix) :].lower().encode("utf-8", errors="replace")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if hmac.compare_digest(digest, expected):
        return SignatureCheck.VALID
    return SignatureCheck.MISMATCH
