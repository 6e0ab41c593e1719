"""Run records decoded in one pass over their headers: the projection's hot path.

``baton_common.envelope.decode_record_finite`` walks a record's headers twice: once to
collect every ``ce_`` attribute as text, then again to convert each (``time``, integers)
or hand them all to validation. Decoding was the largest part of the projection's CPU
per event (ADR 0560), so :func:`decode_run_record` does both in one walk, each header
looked up once in a table of the envelope's attributes, and gives the envelope that
``decode_record_finite`` gives. Anything off the usual road (an unknown attribute, a
header not in UTF-8, a time or an integer spelled otherwise, a payload orjson does not
read, a missing attribute or value) is left to ``decode_record_finite`` itself, so every
verdict and error message stays its own.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from pydantic import TypeAdapter

from baton_common.envelope import Envelope, Header, decode_record_finite, loads_json
from baton_common.envelope import unchecked_envelope as _envelope

__all__ = ["decode_run_record"]

_TEXT, _INTEGER, _TIME = 0, 1, 2
_ATTRIBUTES: Final = tuple(name for name in Envelope.model_fields if name != "data")
_KINDS: Final = {
    f"ce_{name}": (
        name,
        _TIME
        if name == "time"
        else _INTEGER
        if Envelope.model_fields[name].annotation == int | None
        else _TEXT,
    )
    for name in _ATTRIBUTES
}
_REQUIRED: Final = frozenset(n for n in _ATTRIBUTES if Envelope.model_fields[n].is_required())
# The services' clocks write UTC with "Z" and microseconds (or none), as in baton_common.
_USUAL_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z", re.ASCII)
# The zone object validation gives a "Z" time (pydantic's own, not datetime.UTC).
_UTC: Final = TypeAdapter(datetime).validate_python("2000-01-01T00:00:00Z").tzinfo


def decode_run_record(
    value: bytes | None, headers: list[Header] | tuple[Header, ...]
) -> tuple[Envelope, bool]:
    """``decode_record_finite(value, headers)``: the same envelope, fields-set and flag.

    Raises:
        EnvelopeError: as ``decode_record_finite`` (which decides every unusual record).
    """
    attributes: dict[str, object] = {}
    try:
        for key, raw in headers:
            kind = _KINDS.get(key)
            if kind is None:
                if key.startswith("ce_"):  # not an attribute: validation's verdict
                    return decode_record_finite(value, headers)
                continue
            name, how = kind
            text = raw.decode()
            if how == _TEXT:
                attributes[name] = text
            elif how == _INTEGER:
                if not (text.isascii() and text.isdigit() and len(text) <= 18):
                    return decode_record_finite(value, headers)
                attributes[name] = int(text)
            elif _USUAL_TIME.fullmatch(text) is None:
                return decode_record_finite(value, headers)
            else:
                attributes[name] = datetime.fromisoformat(text).replace(tzinfo=_UTC)
        if value is None or not _REQUIRED <= attributes.keys():
            return decode_record_finite(value, headers)
        data, strict = loads_json(value)
    except ValueError:  # UnicodeDecodeError, a day out of range, JSON refused
        return decode_record_finite(value, headers)
    if not strict or type(data) is not dict:
        return decode_record_finite(value, headers)
    return _envelope(attributes, data), True
