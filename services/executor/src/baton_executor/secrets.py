"""Secret values: resolved only here, right before an action runs, and redacted after.

Stories reference secrets as ``secrets.NAME``; the scheduler keeps them as the placeholder
``{{ secrets.NAME }}`` in the step input (see ``baton_common.expressions``). The executor
looks each name up in the environment (``BATON_SECRET_<NAME>``) or in a directory of
mounted files (a Kubernetes secret volume: one file per name), and every value it handed
out is removed from the attempt's output, error message and logs.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import quote, quote_plus

import orjson
from pydantic import JsonValue

from baton_common.expressions import resolve_secrets, secret_names
from baton_executor.errors import PermanentError

__all__ = ["REDACTED", "Redactor", "SecretNotFound", "SecretStore", "encoded_forms"]

REDACTED: Final = "[redacted]"
_PLACEHOLDER_START: Final = b"{{ secrets."
ENV_PREFIX: Final = "BATON_SECRET_"
# Shorter values would turn ordinary text into confetti; such secrets are refused instead.
MIN_SECRET_CHARS: Final = 4
# Base64 fragments shorter than this would match ordinary text; a secret that short has
# its plain form redacted only.
MIN_ENCODED_CHARS: Final = 6


class SecretNotFound(PermanentError):
    """A step references a secret this executor does not have."""


class SecretStore:
    """Looks secrets up by name: environment first, then the mounted directory.

    Args:
        environ: the process environment (``BATON_SECRET_<NAME>`` variables).
        directory: a directory holding one file per secret, named ``NAME``; trailing
            newlines of a file are dropped.
    """

    def __init__(self, environ: Mapping[str, str], directory: Path | None = None) -> None:
        self._environ = environ
        self._directory = directory

    def get(self, name: str) -> str:
        """The value of secret ``name``.

        Raises:
            SecretNotFound: if neither source has it, or the value is too short to redact.
        """
        value = self._environ.get(ENV_PREFIX + name)
        if value is None and self._directory is not None:
            path = self._directory / name
            if path.is_file():
                value = path.read_text().rstrip("\r\n")
        if value is None:
            raise SecretNotFound(
                f"secret {name!r} is not configured on this executor "
                f"(set {ENV_PREFIX}{name} or mount a file named {name})",
                error_type="SecretNotFound",
            )
        if len(value) < MIN_SECRET_CHARS:
            raise SecretNotFound(
                f"secret {name!r} is shorter than {MIN_SECRET_CHARS} characters and could not "
                "be redacted safely",
                error_type="SecretTooShort",
            )
        return value

    def resolve(self, value: dict[str, JsonValue]) -> tuple[dict[str, JsonValue], Redactor]:
        """``value`` with its placeholders resolved, and a redactor for the values used."""
        if not _may_hold_placeholders(value):
            return value, _NOTHING_TO_REDACT
        names = secret_names(value)
        if not names:
            return value, _NOTHING_TO_REDACT
        values = {name: self.get(name) for name in sorted(names)}
        resolved = resolve_secrets(value, values.__getitem__)
        assert isinstance(resolved, dict)
        return resolved, Redactor(values.values())


def _may_hold_placeholders(value: dict[str, JsonValue]) -> bool:
    """False only if no string in ``value`` can contain a placeholder.

    One pass of orjson over the input (it writes ``{{ secrets.`` unescaped) is far cheaper
    than walking it in Python, and most steps reference no secret at all.
    """
    try:
        return _PLACEHOLDER_START in orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return True  # e.g. an integer beyond 64 bits: let the walk decide


def encoded_forms(value: str) -> set[str]:
    """``value`` and the encodings it is commonly echoed in: URL-encoded, and base64
    (standard and URL-safe, also inside a longer base64 text such as a ``Basic``
    credential, whatever its byte alignment there)."""
    forms = {value, quote(value, safe=""), quote_plus(value)}
    raw = value.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        # skip the characters that mix in the padding bytes or the trailing bits
        start = -(-offset * 8 // 6)
        end = ((offset + len(raw)) * 8) // 6
        fragment = encoded[start:end]
        if len(fragment) >= MIN_ENCODED_CHARS:
            forms |= {fragment, fragment.replace("+", "-").replace("/", "_")}
    return forms


class Redactor:
    """Replaces known secret values, and their encoded forms, with ``[redacted]`` in text
    and JSON."""

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so a secret containing another is removed whole.
        forms = {form for v in values if v for form in encoded_forms(v)}
        self._values = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        """``text`` without any secret value."""
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def json(self, value: JsonValue) -> JsonValue:
        """A copy of ``value`` with secret values removed from every string and key."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(k): self.json(v) for k, v in value.items()}
        return value


_NOTHING_TO_REDACT: Final = Redactor(())
"""Shared by every step that resolved no secret (a redactor never changes)."""
