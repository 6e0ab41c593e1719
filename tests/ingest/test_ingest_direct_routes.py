"""The router's direct path writes exactly what the general path writes (ADR 0230)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import JsonValue

from baton_common.envelope import encode_record
from baton_common.kafka import to_envelope
from baton_common.records import EventReceived
from baton_common.settings import TopicSettings
from baton_common.testing import Record
from baton_ingest.consumer import Handled, IngestRouter
from baton_ingest.direct_routes import DirectRoutes
from baton_ingest.metrics import IngestMetrics
from baton_ingest.received_records import received_record

from .fakes import FakeConsumer, FakePublisher
from .stories import AUDIT_ALL, OPEN, TRIAGE, catalog_of, story

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
COMPOSITE = """
id: composite-key
version: 7
trigger:
  webhook: {path: edr-alerts}
  when: event.severity != "low"
  dedup: {key: "{{ event.severity }}/{{ event.alert_id }}", window: 10m}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""

# Values orjson reads (the direct path's case) and values it leaves to the standard library.
DIRECT_BODIES = [
    b'{"alert_id": "a-1", "severity": "high"}',
    b'{"alert_id": "a-2", "severity": "critical", "n": 3, "host": "h", "score": 0.25, "x": null}',
    b'{"alert_id": "a-3", "severity": "low", "nested": {"l": [1, [2.5, {"k": "v"}]], "e": {}}}',
    '{"alert_id": "ü-☃ \\ud83d\\ude00", "severity": "high", "t": "q \\" \\\\ \\n"}'.encode(),
    b'{"alert_id": "{{ event.x }}", "severity": "high", "n": -922337203685477580}',
    b'{"alert_id": "a-4", "severity": "high", "n": -1.5e300, "host": "h", "f": 1e-7}',
    b'{"alert_id": "a-5", "severity": "high", "alert_id": "dup-wins"}',
    b'{"alert_id": 17, "severity": "high"}',  # a key that is not text: rendered
    b'{"severity": "high", "n": 2}',  # alert_id missing: the key fails
    b'{"alert_id": "a-7"}',  # severity missing: the condition reads missing data
    b'{"alert_id": "", "severity": "high"}',  # an empty key
    b"{}",
    b'{"alert_id": "a-8", "severity": "high", "deep": ' + b"[" * 300 + b"]" * 300 + b"}",
]
GENERAL_BODIES = [
    b'{"alert_id": "a-9", "severity": "high", "nan": NaN}',
    b'{"alert_id": "a-10", "severity": "high", "big": 1000000000000000000000000000000}',
    b'{"alert_id": "a-12", "severity": "high", "n": 9223372036854775807}',
    b'{"alert_id": "a-11", "severity": "high", "lone": "\\ud800"}',
    b"[1, 2]",
    b"not json",
    '{"alert_id": "latin-1 \xe9"}'.encode("latin-1"),
]
HEADERS: list[tuple[tuple[str, bytes], ...]] = [
    (("source", b"edr-alerts"),),
    (("Source", b"edr-alerts"), ("source", b"open"), ("traceparent", TRACEPARENT)),
    (("source", b"edr-alerts"), ("TraceParent", b"not-a-traceparent")),
    (("content-type", b"application/json; charset=utf-8"), ("source", b"edr-alerts")),
    (("source", b"open"),),
    (("source", b"nobody-listens"),),
    (("source", "ünïcode".encode()),),
]
GENERAL_HEADERS: list[tuple[tuple[str, bytes], ...]] = [
    (),
    (("source", b""),),
    (("source", b"\xff\xfe"),),
    (("source", b"edr-alerts"), ("traceparent", b"\xff")),
    (("content-type", b"application/cloudevents+json"), ("source", b"edr-alerts")),
    (("content-type", b"\xff"), ("source", b"edr-alerts")),
    (("ce_type", b"com.example.alert"), ("source", b"edr-alerts")),
]


CATALOG = catalog_of(story(TRIAGE), story(AUDIT_ALL), story(OPEN), story(COMPOSITE))


def ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"cmd-{next(counter)}"


def router() -> IngestRouter:
    return IngestRouter(
        consumer=FakeConsumer(),
        publisher=FakePublisher(),
        catalog=CATALOG,
        catalog_ready=None,  # type: ignore[arg-type]  # never run: only handle() is called
        topics=TopicSettings(),
        metrics=IngestMetrics(CollectorRegistry()),
        clock=lambda: NOW,
        new_id=ids(),
    )


def record(value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> Record:
    return Record("baton.ingest", 4, 1234, b"k", value, headers)


def both_paths(item: Record) -> tuple[Handled, Handled, bool]:
    """The general path's result, the direct path's, and whether the direct path took it."""
    # The router takes the direct path with debug logs off; the tests log at debug level.
    raw = DirectRoutes(CATALOG, "baton.commands", NOW, ids())
    took = DirectRoutes(CATALOG, "baton.commands", NOW, ids()).route(item) is not None
    return router().handle(item, NOW), router().handle(item, NOW, raw), took


@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize("value", DIRECT_BODIES)
def test_the_direct_path_writes_what_the_general_path_writes(
    value: bytes, headers: tuple[tuple[str, bytes], ...]
) -> None:
    general, direct, _ = both_paths(record(value, headers))
    assert direct == general


def test_plain_raw_json_takes_the_direct_path() -> None:
    for value in DIRECT_BODIES[:8]:
        for headers in HEADERS:
            general, direct, took = both_paths(record(value, headers))
            assert took, (value, headers)
            assert direct == general


@pytest.mark.parametrize(
    "item",
    [record(value, HEADERS[0]) for value in GENERAL_BODIES]
    + [record(DIRECT_BODIES[0], headers) for headers in GENERAL_HEADERS]
    + [record(None, HEADERS[0])],
)
def test_everything_else_is_left_to_the_general_path(item: Record) -> None:
    general, direct, took = both_paths(item)
    assert not took
    assert direct == general


def test_failing_expressions_are_left_to_the_general_path_which_reports_them() -> None:
    for value in (DIRECT_BODIES[8], DIRECT_BODIES[9], DIRECT_BODIES[10]):
        general, direct, took = both_paths(record(value, HEADERS[0]))
        assert not took
        assert direct == general
        assert general.skipped  # the general path counts the reason


def test_the_direct_path_routes_one_event_to_every_matching_story_in_id_order() -> None:
    raw = DirectRoutes(CATALOG, "baton.commands", NOW, iter(["c1", "c2", "c3"]).__next__)
    routed = raw.route(record(DIRECT_BODIES[1], HEADERS[0]))
    assert routed is not None
    outputs, started = routed
    assert started == ["audit-all", "composite-key", "phishing-triage"]
    assert [dict(o.headers)["ce_id"] for o in outputs] == [b"c1", b"c2", b"c3"]


def webhook_record(body: bytes, traceparent: str | None = None) -> Record:
    """What the webhook endpoint writes for ``body`` received on ``edr-alerts``."""
    parsed = orjson.loads(body)
    out = received_record(
        "baton.ingest", "edr-alerts", parsed, id="evt-1", time=NOW, traceparent=traceparent
    )
    return Record("baton.ingest", 1, 77, out.key, out.value, tuple(out.headers))


def cloudevent(
    data: dict[str, JsonValue],
    edit: Callable[[list[tuple[str, bytes]]], object] | None = None,
    **extensions: str,
) -> Record:
    """A CloudEvent record with the general encoder's headers, ``data`` as its value."""
    envelope = to_envelope(
        EventReceived(path="edr-alerts", body={}),
        id="evt-2",
        source="somewhere",
        time=NOW,
        **extensions,  # type: ignore[arg-type]
    )
    _, headers = encode_record(envelope)
    if edit is not None:
        edit(headers)
    return Record("baton.ingest", 1, 78, b"k", orjson.dumps(data), tuple(headers))


@pytest.mark.parametrize("value", DIRECT_BODIES)
def test_webhook_records_take_the_direct_path_with_the_same_result(value: bytes) -> None:
    for traceparent in (None, TRACEPARENT.decode()):
        general, direct, took = both_paths(webhook_record(value, traceparent))
        assert direct == general
        assert took or value in DIRECT_BODIES[8:]  # failing expressions: the general path


def test_a_received_cloudevent_with_lineage_takes_the_direct_path() -> None:
    body: dict[str, JsonValue] = {"alert_id": "a-1", "severity": "high"}
    data: dict[str, JsonValue] = {
        "type": "baton.ingest.received.v1",
        "path": "edr-alerts",
        "body": body,
    }
    lineage = {"actor": "user:alice", "correlationid": "corr-1", "traceparent": "bad"}
    for item in (cloudevent(data), cloudevent(data, None, **lineage)):
        general, direct, took = both_paths(item)
        assert took
        assert direct == general
        assert len(general.records) == 3  # triage, audit-all, composite-key


def _set(name: str, value: bytes) -> Callable[[list[tuple[str, bytes]]], object]:
    def edit(headers: list[tuple[str, bytes]]) -> None:
        headers[:] = [(k, v) for k, v in headers if k != name] + [(name, value)]

    return edit


GOOD: dict[str, JsonValue] = {
    "type": "baton.ingest.received.v1",
    "path": "edr-alerts",
    "body": {"alert_id": "a-1", "severity": "high"},
}


@pytest.mark.parametrize(
    "item",
    [
        cloudevent(GOOD, _set("ce_time", b"not a time")),
        cloudevent(GOOD, _set("ce_time", b"2024-05-01")),  # a date validation accepts
        cloudevent(GOOD, _set("ce_storyversion", b"3")),
        cloudevent(GOOD, _set("ce_seq", b"x")),
        cloudevent(GOOD, _set("ce_id", b"\xff")),
        cloudevent(GOOD, lambda h: h.append(("ce_id", b"other"))),  # the last one wins there
        cloudevent(GOOD, lambda h: h.append(("CE_ACTOR", b"shouting"))),
        cloudevent(GOOD, _set("ce_type", b"com.example.alert")),
        cloudevent(GOOD, _set("ce_type", b"baton.other.v1")),
        cloudevent(GOOD, lambda h: h.remove(next(x for x in h if x[0] == "ce_time"))),
        cloudevent(GOOD, lambda h: h.remove(next(x for x in h if x[0] == "ce_source"))),
        cloudevent({**GOOD, "path": None}),
        cloudevent({**GOOD, "path": 3}),
        cloudevent({**GOOD, "body": [1]}),
        cloudevent({**GOOD, "extra": 1}),
        cloudevent({"type": "baton.ingest.received.v1", "path": "edr-alerts"}),
    ],
)
def test_unusual_cloudevents_are_left_to_the_general_path_or_read_alike(item: Record) -> None:
    general, direct, _ = both_paths(item)
    assert direct == general
