"""The webhook's direct ``baton.ingest`` record is byte for byte the general path's record."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from baton_common.kafka import outbound, to_envelope
from baton_common.records import EventReceived
from baton_ingest.received_records import received_record

from .test_ingest_start_records import BODIES, NOW, TRACEPARENT


def general(path: str, body: dict[str, JsonValue], traceparent: str | None) -> object:
    envelope = to_envelope(
        EventReceived(path=path, body=body),
        id="7b0c3f7e-0000-4000-8000-000000000000",
        source=f"baton/ingest/webhook/{path}",
        time=NOW,
        correlationid="7b0c3f7e-0000-4000-8000-000000000000",
        traceparent=traceparent,
    )
    return outbound("baton.ingest", path, envelope)


@pytest.mark.parametrize("body", BODIES, ids=lambda b: str(b["alert_id"]))
@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
@pytest.mark.parametrize("path", ["edr-alerts", "ü/☃ path"])
def test_the_direct_record_is_the_general_paths_record(
    body: dict[str, JsonValue], traceparent: str | None, path: str
) -> None:
    direct = received_record(
        "baton.ingest",
        path,
        body,
        id="7b0c3f7e-0000-4000-8000-000000000000",
        time=NOW,
        traceparent=traceparent,
    )
    assert direct == general(path, body, traceparent)


def test_plain_json_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the general path was taken")

    monkeypatch.setattr("baton_ingest.received_records.outbound", refuse)
    for body in BODIES[:4]:
        received_record("baton.ingest", "edr", body, id="e-1", time=NOW, traceparent=None)
