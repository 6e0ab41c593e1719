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

import json
from datetime import datetime
from typing import Final

from pydantic import JsonValue, ValidationError

from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord, to_envelope
from baton_common.records import EventReceived

__all__ = ["IntakeError", "describe", "read_inbound"]

EVENT_RECEIVED: Final = EventReceived.model_fields["type"].default
STRUCTURED: Final = "application/cloudevents+json"


class IntakeError(ValueError):
    """A record that cannot be read; ``reason`` is a short code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A validation error in one short line: ``field: problem; …``."""
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in errors]
    more = f" (+{len(parts) - limit} more)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def _header(record: ConsumedRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key.lower() == name:
            try:
                return value.decode()
            except UnicodeDecodeError as exc:
                raise IntakeError("bad_header", f"header {key} is not UTF-8") from exc
    return None


def _json_object(value: bytes | None, what: str) -> dict[str, JsonValue]:
    if value is None:
        raise IntakeError("no_value", "record has no value")
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntakeError("not_json", f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise IntakeError("body_not_object", f"{what} must be a JSON object")
    parsed: dict[str, JsonValue] = document
    return parsed


def _received(
    *, id: str, source: str, body: dict[str, JsonValue], time: datetime, **ext: str | None
) -> Envelope:
    try:
        return to_envelope(
            EventReceived(path=source, body=body),
            id=id,
            source=source,
            time=time,
            correlationid=ext.pop("correlationid", None) or id,
            **ext,
        )
    except ValidationError as exc:
        raise IntakeError("invalid_cloudevent", f"invalid event: {describe(exc)}") from exc


def read_inbound(
    record: ConsumedRecord, now: datetime
) -> tuple[Envelope, EventReceived, dict[str, JsonValue]]:
    """The record as a ``baton.ingest.received.v1`` envelope, its event and the event's body.

    Raises:
        IntakeError: why the record cannot be used (it belongs on the dead-letter topic).
    """
    if _header(record, "ce_type") is not None:
        headers = list(record.headers)
        if _header(record, "ce_time") is None:  # optional in CloudEvents; Baton's envelope has it
            headers.append(("ce_time", now.isoformat().encode()))
        try:
            envelope = decode_record(record.value, headers)
        except EnvelopeError as exc:
            raise IntakeError("invalid_cloudevent", str(exc)) from exc
        if envelope.type.startswith("baton.") and envelope.type != EVENT_RECEIVED:
            raise IntakeError(
                "not_event_received", f"type {envelope.type!r} is not {EVENT_RECEIVED}"
            )
        if envelope.type != EVENT_RECEIVED:
            envelope = _received(
                id=envelope.id,
                source=envelope.source,
                body=envelope.data,
                time=envelope.time,
                traceparent=envelope.traceparent,
                actor=envelope.actor,
            )
    elif (_header(record, "content-type") or "").split(";")[0].strip() == STRUCTURED:
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
        envelope = _received(
            id=str(event["id"]),
            source=str(event["source"]),
            body=data,
            time=when,
            traceparent=traceparent if isinstance(traceparent, str) else None,
        )
    else:
        source = _header(record, "source")
        if not source:
            raise IntakeError(
                "no_source",
                "record is neither a CloudEvent (binary or structured) nor raw JSON "
                "with a `source` header",
            )
        body = _json_object(record.value, "record value")
        envelope = _received(
            id=f"kafka:{record.topic}:{record.partition}:{record.offset}",
            source=source,
            body=body,
            time=now,
            traceparent=_header(record, "traceparent"),
        )
    try:
        event_received = EventReceived.model_validate(envelope.data)
    except ValidationError as exc:
        raise IntakeError("not_event_received", f"invalid EventReceived: {describe(exc)}") from exc
    if not isinstance(event_received.body, dict):
        raise IntakeError("body_not_object", "an ingested event's body must be a JSON object")
    return envelope, event_received, event_received.body
