"""The CloudEvents 1.0 envelope every Baton record travels in (DESIGN.md rule 7).

Records use the CloudEvents Kafka protocol binding in *binary* mode: the event's
attributes are Kafka headers prefixed ``ce_`` and the record value is the JSON
``data``. Binary mode keeps the payload a plain JSON document that any consumer
(a Kafka Connect sink, ``kcat``) can read without knowing the envelope.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    create_model,
)

from baton_common.trusted import assembled

__all__ = [
    "CONTENT_TYPE",
    "Envelope",
    "EnvelopeError",
    "Header",
    "build_envelope",
    "data_json",
    "decode_record",
    "decode_record_finite",
    "describe",
    "encode_record",
    "loads_json",
    "time_text",
    "unchecked_envelope",
]

CONTENT_TYPE: Final = "application/json"
_PREFIX: Final = "ce_"

Header = tuple[str, bytes]


class EnvelopeError(ValueError):
    """A Kafka record is not a valid Baton CloudEvent; the message says why."""


class Envelope(BaseModel):
    """One CloudEvent with Baton's extension attributes.

    ``data`` is the payload model dumped to JSON; typed access goes through the
    contract unions (``parse_event``, ``parse_command``) in ``baton_common.contracts``.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    source: str
    subject: str | None = None
    time: datetime
    specversion: str = "1.0"
    datacontenttype: str = CONTENT_TYPE
    storyid: str | None = None
    storyversion: int | None = None
    causationid: str | None = None
    correlationid: str | None = None
    actor: str | None = None
    seq: int | None = None
    traceparent: str | None = None
    prevhash: str | None = None
    hash: str | None = None
    data: dict[str, JsonValue] = Field(default_factory=dict)


_ATTRS: Final = tuple(name for name in Envelope.model_fields if name != "data")

# The envelope's attributes alone, validated exactly as ``Envelope`` validates them (same
# names, types and defaults, same model title in messages). ``data`` is left out: when it
# comes from a JSON parser or a ``model_dump(mode="json")`` it holds only JSON types, and
# validating it as ``JsonValue`` again is most of the cost of a large payload.
_Attributes = create_model(  # type: ignore[call-overload]
    "Envelope",
    __config__=ConfigDict(frozen=True),
    **{
        name: (field.annotation, field)
        for name, field in Envelope.model_fields.items()
        if name != "data"
    },
)
_TIME: Final = TypeAdapter(datetime)
# Every ASCII digit as "1", any other byte as "0": a run of 19 digits (where an integer
# may exceed 64 bits) is then a run of 19 ones, found at C speed; a regular expression
# scanning for one cost more than orjson's parse of the whole record.
_DIGITS_AS_ONES: Final = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_LONG_NUMBER: Final = b"1" * 19
_SORTED: Final = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def build_envelope(attributes: Mapping[str, object], data: dict[str, JsonValue]) -> Envelope:
    """An envelope from its attributes, validated, and ``data``, trusted to be plain JSON.

    ``data`` must be what a JSON parser or ``model_dump(mode="json")`` returns (dicts with
    string keys, lists, strings, numbers, booleans, None): it is used as is. The attributes
    are validated and coerced as ``Envelope.model_validate`` would; unknown ones are ignored.

    Raises:
        ValidationError: as ``Envelope.model_validate`` would for the same attributes.
    """
    values = _usual_attributes(attributes)
    if values is not None:
        return _assembled(values, attributes.keys(), data)
    checked = _Attributes.model_validate(attributes)
    return _assembled(dict(checked.__dict__), checked.model_fields_set, data)


_DEFAULTS: Final = {name: field.default for name, field in Envelope.model_fields.items()}
_KNOWN: Final = frozenset(_ATTRS)
_REQUIRED: Final = frozenset(n for n in _ATTRS if Envelope.model_fields[n].is_required())
_INTEGERS: Final = frozenset(n for n in _ATTRS if Envelope.model_fields[n].annotation == int | None)
# The attributes whose usual value is their text as it is (``_usual_value``'s last case).
_TEXT: Final = _KNOWN - _INTEGERS - {"time"}
_HEADER_NAMES: Final = {_PREFIX + name: name for name in _ATTRS}
# The services' clocks write UTC with "Z" and microseconds (or none); pydantic's zone.
_USUAL_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z", re.ASCII)
_PYDANTIC_UTC: Final = _TIME.validate_python("2000-01-01T00:00:00Z").tzinfo


def _usual_attributes(attributes: Mapping[str, object]) -> dict[str, object] | None:
    """Every attribute's value (defaults included) as validation gives it, for attributes
    of the usual shape: known names, the required ones given, text values, integers of
    plain digits, ``time`` as the services write it. None otherwise: validation decides.
    ``tests/common/test_envelope_codec.py`` compares both roads."""
    if not (_REQUIRED <= attributes.keys() <= _KNOWN):
        return None
    values = dict(_DEFAULTS)
    for name, value in attributes.items():
        if type(value) is not str or not _usual_value(values, name, value):
            return None
    return values


def _usual_value(values: dict[str, object], name: str, text: str) -> bool:
    """Put the known attribute ``name``'s ``text`` in ``values`` as validation gives it,
    if it has the usual shape; False (``values`` untouched) when validation must decide."""
    if name == "time":
        if _USUAL_TIME.fullmatch(text) is None:
            return False
        try:
            values[name] = datetime.fromisoformat(text).replace(tzinfo=_PYDANTIC_UTC)
        except ValueError:  # a day or an hour out of range: validation's message
            return False
    elif name in _INTEGERS:
        if not (text.isascii() and text.isdigit() and len(text) <= 18):
            return False
        values[name] = int(text)
    else:
        values[name] = text
    return True


def unchecked_envelope(attributes: Mapping[str, object], data: dict[str, JsonValue]) -> Envelope:
    """``build_envelope(attributes, data)`` for attributes its validation keeps as they are.

    The caller vouches that ``id``, ``type``, ``source`` and ``time`` are given, every
    other attribute is a known name, text attributes are ``str`` (or None) and ``time`` a
    ``datetime``: the same values, defaults and fields-set, without running the validator.
    """
    values = dict(_DEFAULTS)
    values.update(attributes)
    return _assembled(values, attributes.keys(), data)


def _assembled(
    values: dict[str, object], fields_set: Iterable[str], data: dict[str, JsonValue]
) -> Envelope:
    """An envelope holding ``values`` (every attribute, in field order; taken, not
    copied) and ``data``."""
    values["data"] = data
    given = set(fields_set)
    given.add("data")
    # What ``model_construct`` does, without its per-field default handling (all are set).
    return assembled(Envelope, values, given)


def encode_record(envelope: Envelope) -> tuple[bytes, list[Header]]:
    """Encode an envelope as a Kafka record value and headers (binary content mode)."""
    headers: list[Header] = [("content-type", CONTENT_TYPE.encode())]
    for name in _ATTRS:
        value = getattr(envelope, name)
        if value is None or name == "datacontenttype":
            continue
        if isinstance(value, datetime):
            value = time_text(value)
        headers.append((_PREFIX + name, str(value).encode()))
    return data_json(envelope.data), headers


def time_text(time: datetime) -> str:
    """An envelope time as its JSON and its ``ce_time`` header spell it (pydantic's text).

    For the services' clocks (``datetime.UTC``) and the times decoded from a usual
    ``ce_time`` (pydantic's UTC zone, ``decode_record_finite``) that is ``isoformat`` with
    "Z" for the offset, at a fraction of the serializer's cost; any other zone goes through
    pydantic.
    """
    if time.tzinfo is UTC or time.tzinfo is _PYDANTIC_UTC:
        return time.isoformat()[:-6] + "Z"
    text: str = _TIME.dump_python(time, mode="json")
    return text


def data_json(data: dict[str, JsonValue]) -> bytes:
    """A record's value for ``data``: compact JSON with sorted keys (UTF-8, not
    ASCII-escaped), as :func:`encode_record` writes it.

    orjson when it can say the same thing: it writes NaN and infinities as null and refuses
    integers beyond 64 bits and lone surrogates, where the standard library keeps them.
    """
    try:
        value = orjson.dumps(data, option=_SORTED)
    except (orjson.JSONEncodeError, TypeError):
        value = b""
    if not value or (b"null" in value and _has_non_finite(data)):
        value = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return value


def _has_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def loads_json(value: bytes) -> tuple[Any, bool]:
    """``value`` parsed as JSON, and whether orjson parsed it.

    orjson accepts strict RFC 8259 JSON in UTF-8 only and returns JSON types only. It reads
    integers beyond 64 bits as floats, so a value with a long run of digits is not given to
    it. What orjson refuses (NaN, other encodings, lone surrogates, huge numbers, or not
    JSON at all) gets the standard library's verdict and message (``json.loads``).

    Raises:
        whatever ``json.loads`` raises for ``value``.
    """
    if _LONG_NUMBER not in value.translate(_DIGITS_AS_ONES):
        try:
            return orjson.loads(value), True
        except orjson.JSONDecodeError:
            pass
    return json.loads(value), False


def decode_record(value: bytes | None, headers: list[Header] | tuple[Header, ...]) -> Envelope:
    """Decode a Kafka record written by :func:`encode_record`.

    Raises:
        EnvelopeError: with the reason when headers or payload are unusable.
    """
    return decode_record_finite(value, headers)[0]


def decode_record_finite(
    value: bytes | None, headers: list[Header] | tuple[Header, ...]
) -> tuple[Envelope, bool]:
    """:func:`decode_record`, and whether ``data`` is known to hold no NaN or infinity.

    True when orjson parsed the payload: it refuses NaN, infinities and numbers that
    overflow a double, so such ``data`` needs no non-finite check before it is written
    where NaN is refused (PostgreSQL's jsonb). False says nothing either way.

    Raises:
        EnvelopeError: as :func:`decode_record`.
    """
    attrs: dict[str, object] = {}
    values = dict(_DEFAULTS)  # the attributes as validation gives them, while usual
    usual = True
    for key, raw in headers:
        name = _HEADER_NAMES.get(key)  # a known attribute's header: one lookup (ADR 0572)
        if name is None and key.startswith(_PREFIX):
            name = key[3:]
        if name is not None:
            try:
                attrs[name] = text = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key} is not UTF-8") from exc
            if name in _TEXT:  # most attributes: kept as they are, no call (ADR 0572)
                values[name] = text
            elif usual:
                usual = name in _KNOWN and _usual_value(values, name, text)
    if "type" not in attrs:
        raise EnvelopeError("record has no ce_type header: not a CloudEvent in binary mode")
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        data, parsed_strictly = loads_json(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    try:
        if parsed_strictly:
            if usual and _REQUIRED <= attrs.keys():  # one walk of the headers: no validation
                return _assembled(values, attrs.keys(), data), True
            return build_envelope(attrs, data), True
        return Envelope.model_validate({**attrs, "data": data}), False
    except ValidationError as exc:
        raise EnvelopeError(f"invalid envelope: {_first_error(exc)}") from exc


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A record's validation error in one short line: ``field: problem; …``."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()]
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']}"
