"""Reading baton.ingest records in each documented format (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from baton_common.envelope import build_envelope
from baton_common.testing import Record
from baton_ingest.intake import IntakeError, read_inbound

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rec(value: bytes | None, **headers: str) -> Record:
    return Record(
        "baton.ingest", 1, 42, None, value, tuple((k, v.encode()) for k, v in headers.items())
    )


def test_binary_cloudevent_of_a_producer() -> None:
    record = rec(
        b'{"alert_id": "a-1"}',
        ce_specversion="1.0",
        ce_id="evt-1",
        ce_source="edr-alerts",
        ce_type="com.example.alert.v1",
        ce_time="2026-01-01T00:00:00Z",
        ce_traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    envelope, event, body = read_inbound(record, NOW)
    assert (envelope.id, envelope.source, event.path, body) == (
        "evt-1",
        "edr-alerts",
        "edr-alerts",
        {"alert_id": "a-1"},
    )
    assert envelope.type == "baton.ingest.received.v1"
    assert envelope.traceparent is not None
    assert envelope.time == datetime(2026, 1, 1, tzinfo=UTC)


def test_structured_cloudevent() -> None:
    value = json.dumps(
        {"specversion": "1.0", "id": "e2", "source": "edr", "type": "x", "data": {"a": 1}}
    ).encode()
    envelope, event, body = read_inbound(
        rec(value, **{"content-type": "application/cloudevents+json; charset=utf-8"}), NOW
    )
    assert (envelope.id, event.path, body, envelope.time) == ("e2", "edr", {"a": 1}, NOW)


def test_raw_json_gets_an_id_from_its_position() -> None:
    envelope, event, body = read_inbound(rec(b'{"a": 2}', source="edr"), NOW)
    assert (envelope.id, event.path, body) == ("kafka:baton.ingest:1:42", "edr", {"a": 2})


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (rec(b'{"a": 1}'), "no_source"),
        (rec(b"[1]", source="edr"), "body_not_object"),
        (rec(b"{nope", source="edr"), "not_json"),
        (rec(None, source="edr"), "no_value"),
        (
            rec(b'{"id": "x", "data": {}}', **{"content-type": "application/cloudevents+json"}),
            "invalid_cloudevent",
        ),
        (
            rec(
                b'{"specversion": "1.0", "id": "x", "source": "s", "type": "t", "data": 3}',
                **{"content-type": "application/cloudevents+json"},
            ),
            "body_not_object",
        ),
        (
            rec(
                b"{}",
                ce_type="baton.run.start.v1",
                ce_id="x",
                ce_source="s",
                ce_time=NOW.isoformat(),
            ),
            "not_event_received",
        ),
        (
            rec(b"[]", ce_type="com.x", ce_id="x", ce_source="s", ce_time=NOW.isoformat()),
            "invalid_cloudevent",
        ),
    ],
)
def test_unusable_records_say_why(record: Record, reason: str) -> None:
    with pytest.raises(IntakeError) as caught:
        read_inbound(record, NOW)
    assert caught.value.reason == reason


def test_a_binary_cloudevent_without_time_is_stamped_on_arrival() -> None:
    record = rec(b'{"a": 1}', ce_specversion="1.0", ce_id="e", ce_source="s", ce_type="x")
    envelope, _, _ = read_inbound(record, NOW)
    assert envelope.time == NOW


@pytest.mark.parametrize(
    "record",
    [
        rec(b'{"a": 1}', source="edr", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
        rec(b'{"a": 1}', source="edr"),
        rec(
            json.dumps(
                {"id": "e-1", "source": "edr", "type": "x", "time": NOW.isoformat(), "data": {}}
            ).encode(),
            **{"content-type": "application/cloudevents+json"},
        ),
        rec(b'{"a": 1}', ce_id="e-2", ce_source="edr", ce_type="x", ce_actor="user:bo"),
    ],
    ids=["raw-traced", "raw", "structured", "binary"],
)
def test_the_envelope_is_what_validating_its_attributes_gives(record: Record) -> None:
    envelope, _, _ = read_inbound(record, NOW)

    attributes = envelope.model_dump(exclude={"data"}, exclude_unset=True)
    validated = build_envelope(attributes, envelope.data)
    assert envelope.model_dump() == validated.model_dump()
    assert envelope.model_fields_set == validated.model_fields_set
