"""Secrets are redacted in their encoded forms too (ADR 0912)."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from baton_executor.secrets import REDACTED, Redactor

SECRET = "s3cr3t-Value/+x=42"


@pytest.mark.parametrize(
    "echoed",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        base64.b64encode(f"user:{SECRET}".encode()).decode(),  # a Basic credential
        base64.b64encode(f"ab:{SECRET}".encode()).decode(),
        base64.b64encode(f"a:{SECRET}!".encode()).decode(),
    ],
)
def test_every_form_of_the_secret_is_redacted(echoed: str) -> None:
    text = Redactor([SECRET]).text(f"answer: {echoed} end")
    assert REDACTED in text
    assert echoed not in text
    # what is left cannot be decoded back into the secret
    assert SECRET not in text
    for piece in text.split():
        try:
            decoded = base64.b64decode(piece + "==", validate=False)
        except ValueError:
            continue
        assert SECRET.encode() not in decoded


def test_ordinary_text_is_left_alone() -> None:
    text = "the quick brown fox jumps over the lazy dog 0123456789"
    assert Redactor(["abcd"]).text(text) == text
