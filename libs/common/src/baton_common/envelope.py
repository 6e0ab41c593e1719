"""The CloudEvents 1.0 envelope every Baton record travels in (DESIGN.md rule 7).

Records use the CloudEvents Kafka protocol binding in *binary* mode: the event's
attributes are Kafka headers prefixed ``ce_`` and the record value is the JSON
``data``. Binary mode keeps the payload a plain JSON document that any consumer
(a Kafka Connect sink, ``kcat``) can read without knowing the envelope.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

__all__ = [
    "CONTENT_TYPE",
    "Envelope",
    "EnvelopeError",
    "Header",
    "decode_record",
    "encode_record",
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


def encode_record(envelope: Envelope) -> tuple[bytes, list[Header]]:
    """Encode an envelope as a Kafka record value and headers (binary content mode)."""
    headers: list[Header] = [("content-type", CONTENT_TYPE.encode())]
    attrs = envelope.model_dump(mode="json", exclude={"data", "datacontenttype"})
    for name in _ATTRS:
        value = attrs.get(name)
        if value is not None:
            headers.append((_PREFIX + name, str(value).encode()))
    value_bytes = json.dumps(envelope.data, separators=(",", ":"), sort_keys=True).encode()
    return value_bytes, headers


def decode_record(value: bytes | None, headers: list[Header] | tuple[Header, ...]) -> Envelope:
    """Decode a Kafka record written by :func:`encode_record`.

    Raises:
        EnvelopeError: with the reason when headers or payload are unusable.
    """
    attrs: dict[str, object] = {}
    for key, raw in headers:
        if key.startswith(_PREFIX):
            try:
                attrs[key[len(_PREFIX) :]] = raw.decode()
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {key} is not UTF-8") from exc
    if "type" not in attrs:
        raise EnvelopeError("record has no ce_type header: not a CloudEvent in binary mode")
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("value must be a JSON object")
    try:
        return Envelope.model_validate({**attrs, "data": data})
    except ValidationError as exc:
        raise EnvelopeError(f"invalid envelope: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']}"
