"""Webhook bodies: one JSON object, or NDJSON (one object per line, all or nothing)."""

from __future__ import annotations

import json
from typing import NoReturn

from pydantic import JsonValue

from baton_common.envelope import loads_json

__all__ = [
    "JSON_TYPES",
    "NDJSON_TYPES",
    "BodyError",
    "LineError",
    "parse_json",
    "parse_json_checked",
    "parse_ndjson",
]

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})

_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class LineError(dict[str, str | int]):
    """One bad NDJSON line: ``{"line": n, "error": reason}`` (lines count from 1)."""


class BodyError(ValueError):
    """The body is not acceptable; ``errors`` lists bad NDJSON lines."""

    def __init__(self, detail: str, errors: list[LineError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _object(text: bytes | str) -> dict[str, JsonValue]:
    """Parse one JSON object; ValueError with a short reason otherwise."""
    try:
        document = json.loads(text, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ValueError("is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise ValueError(f"is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        kind = _JSON_KINDS.get(type(document), type(document).__name__)
        raise ValueError(f"must be a JSON object, got {kind}")
    parsed: dict[str, JsonValue] = document
    return parsed


def parse_json(body: bytes) -> dict[str, JsonValue]:
    """The body as one JSON object.

    orjson reads it when it can (strict RFC 8259 JSON in UTF-8, same values: ADR 0510);
    anything else — including every refusal — goes through the standard library as before,
    for the same verdict and message.

    Raises:
        BodyError: not JSON, or not an object.
    """
    return parse_json_checked(body)[0]


def parse_json_checked(body: bytes) -> tuple[dict[str, JsonValue], bool]:
    """:func:`parse_json`, and whether orjson read the body: then it holds JSON types
    only (no NaN or infinity), so writing it again needs no check.

    Raises:
        BodyError: not JSON, or not an object.
    """
    try:
        document, strict = loads_json(body)
    except Exception:  # the standard library's verdict, worded below
        strict = False
    if strict and type(document) is dict:
        parsed: dict[str, JsonValue] = document
        return parsed, True
    try:
        return _object(body), False
    except ValueError as exc:
        raise BodyError(f"body {exc}") from exc


def parse_ndjson(body: bytes, max_lines: int) -> list[dict[str, JsonValue]]:
    """Every non-blank line as a JSON object; any bad line refuses the whole body.

    Raises:
        BodyError: with one :class:`LineError` per bad line, or when there are no events
            or more than ``max_lines``.
    """
    events: list[dict[str, JsonValue]] = []
    errors: list[LineError] = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8: {exc}") from exc
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(_object(line))
        except ValueError as exc:
            errors.append(LineError(line=number, error=str(exc)))
    if errors:
        raise BodyError(
            f"{len(errors)} of {len(events) + len(errors)} lines are not valid JSON objects; "
            "nothing was accepted",
            errors,
        )
    if not events:
        raise BodyError("the NDJSON body holds no events")
    if len(events) > max_lines:
        raise BodyError(f"the NDJSON body holds {len(events)} events; the limit is {max_lines}")
    return events
