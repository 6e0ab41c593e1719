"""Durations as authors write them: ``90s``, ``10m``, ``24h``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, TypeAdapter, ValidationError

__all__ = ["Duration", "format_duration", "parse_duration"]

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ISO: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def parse_duration(value: object) -> timedelta:
    """Parse ``90s``, ``10m``, ``24h``, ``7d`` or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value.strip())):
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if isinstance(value, str) and value.strip().startswith("P"):
        # ISO 8601, as pydantic serialises a timedelta to JSON: a story read back from
        # baton.stories must validate again.
        try:
            return _ISO.validate_python(value.strip())
        except ValidationError:
            pass
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 24h, 7d)")


def format_duration(value: timedelta) -> str:
    """The shortest form ``parse_duration`` reads back: ``90s``, ``10m``, ``24h``, ``1500ms``.

    Stories travel as JSON (``baton.stories``); pydantic's default ISO-8601 form (``PT1H``)
    would not parse back into a story.
    """
    millis = round(value.total_seconds() * 1000)
    for unit in ("d", "h", "m", "s"):
        size = int(_UNITS[unit] * 1000)
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
