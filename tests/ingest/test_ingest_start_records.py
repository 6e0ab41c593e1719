"""The router's direct StartRun record is byte for byte the general path's record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import JsonValue

from baton_common.envelope import Envelope
from baton_common.kafka import outbound, to_envelope
from baton_common.records import EventReceived
from baton_ingest.router import route, start_run_envelope
from baton_ingest.start_records import start_run_record

from .stories import AUDIT_ALL, TRIAGE, story

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

BODIES: list[dict[str, JsonValue]] = [
    {"alert_id": "a-1", "severity": "high"},
    {"alert_id": "a-2", "severity": "critical", "n": 3, "score": 0.25, "ok": True, "x": None},
    {"alert_id": "a-3", "severity": "high", "nested": {"list": [1, [2.5, {"k": "v"}]], "e": {}}},
    {"alert_id": "ü-☃", "severity": "high", "text": 'quotes " and \\ and \n'},
    {"alert_id": "a-4", "severity": "high", "nan": float("nan")},
    {"alert_id": "a-5", "severity": "high", "inf": [float("-inf")]},
    {"alert_id": "a-6", "severity": "high", "big": 10**30},
    {"alert_id": "a-7", "severity": "high", "surrogate": "\ud800"},
]


def ingest_envelope(body: dict[str, JsonValue], extensions: dict[str, str | None]) -> Envelope:
    return to_envelope(
        EventReceived(path="edr-alerts", body=body),
        id="0b4f7c38-8f0e-4b7e-9a39-2d5f3f6d1c11",
        source="baton/ingest/webhook/edr-alerts",
        time=NOW,
        actor=extensions.get("actor"),
        correlationid=extensions.get("correlationid"),
        traceparent=extensions.get("traceparent"),
    )


EXTENSIONS: list[dict[str, str | None]] = [
    {},
    {"actor": "user:alice", "correlationid": "corr-1", "traceparent": TRACEPARENT},
    {"traceparent": "not-a-traceparent"},
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: str(b["alert_id"]))
@pytest.mark.parametrize("extensions", EXTENSIONS)
def test_the_direct_record_is_the_general_paths_record(
    body: dict[str, JsonValue], extensions: dict[str, str | None]
) -> None:
    ingest = ingest_envelope(body, extensions)
    starts = route(
        EventReceived(path="edr-alerts", body=body),
        body,
        ingest.id,
        [story(TRIAGE), story(AUDIT_ALL)],
    ).starts
    assert len(starts) == 2  # with and without a dedup key
    for start in starts:
        direct = start_run_record("baton.commands", start, ingest, id="cmd-1", time=NOW)
        general = outbound(
            "baton.commands", start.run_id, start_run_envelope(start, ingest, id="cmd-1", time=NOW)
        )
        assert direct == general


def test_plain_json_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def general(*args: object, **kwargs: object) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr("baton_ingest.start_records.outbound", general)
    for body in BODIES[:4]:
        ingest = ingest_envelope(body, EXTENSIONS[1])
        event = EventReceived(path="edr-alerts", body=body)
        for start in route(event, body, ingest.id, [story(TRIAGE), story(AUDIT_ALL)]).starts:
            start_run_record("baton.commands", start, ingest, id="cmd-1", time=NOW)
