"""Reading a ``baton.ingest`` record in any of the accepted formats (see docs/ingest.md).

1. Baton's own ``baton.ingest.received.v1`` CloudEvent (what the webhook endpoint writes).
2. Any other CloudEvent in binary mode: ``ce_id``, ``ce_source``, ``ce_type`` (and
   ``ce_specversion``) headers, the record value is the JSON object ``data``.
3. A CloudEvent in structured mode: header ``content-type: application/cloudevents+json``,
   the value is the whole event as JSON, ``data`` a JSON object.
4. Raw JSON: the value is a JSON object, a ``source`` header names the channel.

For 2-4 the channel that a story's ``webhook.path`` matches is the event's ``source``; the
intake id is the CloudEvent ``id`` (so a producer re-sending an event with the same id
starts no second run), or for raw JSON ``kafka:<topic>:<partition>:<offset>``. Pure:
the time of a record without one is passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import JsonValue, ValidationError

from baton_common.envelope import (
    Envelope,
    EnvelopeError,
    build_envelope,
    decode_record,
    describe,
    loads_json,
    unchecked_envelope,
)
from baton_common.kafka import ConsumedRecord
from baton_common.records import EventReceived
from baton_common.trusted import trusted

__all__ = ["IntakeError", "read_inbound"]

EVENT_RECEIVED: Final = EventReceived.model_fields["type"].default
_EVENT_FIELDS: Final = EventReceived.model_fields.keys()
STRUCTURED: Final = "application/cloudevents+json"


class IntakeError(ValueError):
    """A record that cannot be read; ``reason`` is a short code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Headers:
    """A record's headers by lower-case name; the first of a repeated name wins."""

    __slots__ = ("_raw",)

    def __init__(self, record: ConsumedRecord) -> None:
        self._raw: dict[str, tuple[str, bytes]] = {}
        for key, value in record.headers:
            self._raw.setdefault(key.lower(), (key, value))

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def get(self, name: str) -> str | None:
        found = self._raw.get(name)
        if found is None:
            return None
        key, value = found
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise IntakeError("bad_header", f"header {key} is not UTF-8") from exc


def _json_object(value: bytes | None, what: str) -> dict[str, JsonValue]:
    if value is None:
        raise IntakeError("no_value", "record has no value")
    try:
        document, _ = loads_json(value)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntakeError("not_json", f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise IntakeError("body_not_object", f"{what} must be a JSON object")
    parsed: dict[str, JsonValue] = document
    return parsed


def _received(
    *, id: str, source: str, body: dict[str, JsonValue], time: datetime, **ext: str | None
) -> tuple[Envelope, EventReceived]:
    """The ``baton.ingest.received.v1`` envelope of an event read from a foreign format.

    ``body`` comes from a JSON parser, so it holds JSON types only: validating it as
    ``JsonValue`` and dumping it again (what ``to_envelope(EventReceived(...))`` does) would
    return it unchanged, and is skipped. The attributes are validated, unless they are
    text (or None) and a ``datetime``, which validation would keep as they are.
    """
    attributes: dict[str, object] = {
        "id": id,
        "type": EVENT_RECEIVED,
        "source": source,
        "time": time,
        "correlationid": ext.pop("correlationid", None) or id,
        **ext,
    }
    data: dict[str, JsonValue] = {"type": EVENT_RECEIVED, "path": source, "body": body}
    if type(time) is datetime and all(
        type(value) is str or value is None for name, value in attributes.items() if name != "time"
    ):
        envelope = unchecked_envelope(attributes, data)
    else:
        try:
            envelope = build_envelope(attributes, data)
        except ValidationError as exc:
            raise IntakeError("invalid_cloudevent", f"invalid event: {describe(exc)}") from exc
    return envelope, trusted(EventReceived, path=source, body=body)


def _event_received(data: dict[str, JsonValue]) -> EventReceived:
    """``data`` (a decoded record's, JSON types only) as an ``EventReceived``.

    The common case — exactly the fields an ``EventReceived`` dumps to, well typed — is
    built without validating ``body`` again; anything else is validated, for the same
    verdict and message.
    """
    path = data.get("path")
    if (
        data.keys() == _EVENT_FIELDS
        and data["type"] == EVENT_RECEIVED
        and (path is None or type(path) is str)
    ):
        return trusted(EventReceived, type=EVENT_RECEIVED, path=path, body=data["body"])
    try:
        return EventReceived.model_validate(data)
    except ValidationError as exc:
        raise IntakeError("not_event_received", f"invalid EventReceived: {describe(exc)}") from exc


def read_inbound(
    record: ConsumedRecord, now: datetime
) -> tuple[Envelope, EventReceived, dict[str, JsonValue]]:
    """The record as a ``baton.ingest.received.v1`` envelope, its event and the event's body.

    Raises:
        IntakeError: why the record cannot be used (it belongs on the dead-letter topic).
    """
    headers = _Headers(record)
    if headers.get("ce_type") is not None:
        raw = list(record.headers)
        if headers.get("ce_time") is None:  # optional in CloudEvents; Baton's envelope has it
            raw.append(("ce_time", now.isoformat().encode()))
        try:
            envelope = decode_record(record.value, raw)
        except EnvelopeError as exc:
            raise IntakeError("invalid_cloudevent", str(exc)) from exc
        if envelope.type == EVENT_RECEIVED:
            event_received = _event_received(envelope.data)
        elif envelope.type.startswith("baton."):
            raise IntakeError(
                "not_event_received", f"type {envelope.type!r} is not {EVENT_RECEIVED}"
            )
        else:
            envelope, event_received = _received(
                id=envelope.id,
                source=envelope.source,
                body=envelope.data,
                time=envelope.time,
                traceparent=envelope.traceparent,
                actor=envelope.actor,
            )
    elif (headers.get("content-type") or "").split(";")[0].strip() == STRUCTURED:
        event = _json_object(record.value, "structured CloudEvent")
        missing = [a for a in ("id", "source", "type") if not isinstance(event.get(a), str)]
        if missing:
            raise IntakeError(
                "invalid_cloudevent", f"structured CloudEvent lacks {', '.join(missing)}"
            )
        data = event.get("data")
        if not isinstance(data, dict):
            raise IntakeError("body_not_object", "a CloudEvent's data must be a JSON object")
        time = event.get("time")
        try:
            when = datetime.fromisoformat(time) if isinstance(time, str) else now
        except ValueError as exc:
            raise IntakeError("invalid_cloudevent", f"time is not ISO 8601: {exc}") from exc
        traceparent = event.get("traceparent")
        envelope, event_received = _received(
            id=str(event["id"]),
            source=str(event["source"]),
            body=data,
            time=when,
            traceparent=traceparent if isinstance(traceparent, str) else None,
        )
    else:
        source = headers.get("source")
        if not source:
            raise IntakeError(
                "no_source",
                "record is neither a CloudEvent (binary or structured) nor raw JSON "
                "with a `source` header",
            )
        body = _json_object(record.value, "record value")
        envelope, event_received = _received(
            id=f"kafka:{record.topic}:{record.partition}:{record.offset}",
            source=source,
            body=body,
            time=now,
            traceparent=headers.get("traceparent"),
        )
    if not isinstance(event_received.body, dict):
        raise IntakeError("body_not_object", "an ingested event's body must be a JSON object")
    return envelope, event_received, event_received.body
