"""Tracing off by default, what passes through a hop that does not trace, and hot spans."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from baton_common import telemetry
from baton_common.hot_spans import HotSpan, HotSpans

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_tracing_is_off_without_an_otlp_endpoint() -> None:
    assert telemetry.configure_tracing("test", env={}) is False
    assert (
        telemetry.configure_tracing(
            "test", env={"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        )
        is False
    )
    assert (
        telemetry.configure_tracing(
            "test", env={"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        )
        is False
    )
    assert not telemetry.tracing_enabled()
    with telemetry.span("baton.test", parent=PARENT, attributes={"baton.run_id": "r"}) as span:
        assert span is None


def test_an_untraced_hop_passes_a_valid_traceparent_on_and_drops_a_malformed_one() -> None:
    assert telemetry.current_traceparent(PARENT) == PARENT
    assert telemetry.current_traceparent("not-a-traceparent") is None
    assert telemetry.current_traceparent(None) is None
    assert telemetry.record_span("baton.test", parent=PARENT) == PARENT


class _Receiver(BaseHTTPRequestHandler):
    requests: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        type(self).requests.append(request)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    _Receiver.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", _Receiver.requests
    server.shutdown()
    server.server_close()


def test_a_traced_hop_writes_its_own_span_as_the_parent(
    receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver[0]}
    assert telemetry.configure_tracing("test", env=env) is True
    try:
        with telemetry.span("baton.test", parent=PARENT) as span:
            assert span is not None
            child = telemetry.current_traceparent(PARENT)
        assert child is not None
        _, trace_id, span_id, _ = child.split("-")
        assert trace_id == PARENT.split("-")[1]  # same trace
        assert span_id != PARENT.split("-")[2]  # this hop's span
        recorded = telemetry.record_span("baton.wait", parent=child)
        assert recorded is not None
        assert recorded.split("-")[1] == trace_id
        assert recorded.split("-")[2] not in (span_id, PARENT.split("-")[2])
    finally:
        telemetry.shutdown_tracing()
    assert not telemetry.tracing_enabled()


def _spans(requests: list[ExportTraceServiceRequest]) -> dict[str, tuple[str, Span]]:
    """Every exported span by its id (hex): its service's name and the span."""
    found = {}
    for request in requests:
        for resource in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found[span.span_id.hex()] = (service, span)
    return found


def test_a_hot_span_passes_the_parent_on_when_tracing_is_off() -> None:
    telemetry.configure_tracing("test", env={})
    with telemetry.hot_span("baton.test", parent=PARENT, attributes={"a": "b"}) as traceparent:
        assert traceparent == PARENT
    with telemetry.hot_span("baton.test", parent=None, attributes={}) as traceparent:
        assert traceparent is None


def test_hot_spans_are_children_of_the_parent_exported_as_otlp(
    receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    url, requests = receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    assert telemetry.configure_tracing("scheduler", env=env) is True
    try:
        attributes: dict[str, str | int] = {
            "baton.run_id": "r1",
            "baton.command": "CompleteStep",
            "baton.n": 3,
        }
        with telemetry.hot_span(
            "baton.scheduler.decide", parent=PARENT, attributes=attributes
        ) as a:
            pass
        with (
            pytest.raises(ValueError, match="boom"),
            telemetry.hot_span("baton.scheduler.decide", parent=a, attributes={}) as b,
        ):
            raise ValueError("boom")
        unsampled = PARENT[:-2] + "00"
        with telemetry.hot_span("baton.x", parent=unsampled, attributes={}) as passed:
            assert passed == unsampled  # the parent-based sampler records no child
        with telemetry.hot_span("baton.root", parent=None, attributes={}) as root:
            assert root is not None  # no parent: an SDK span starts a new trace
    finally:
        telemetry.shutdown_tracing()
    assert a is not None
    assert b is not None
    trace_id, parent_id = PARENT.split("-")[1:3]
    assert a.split("-")[1] == b.split("-")[1] == trace_id
    spans = _spans(requests)
    service, first = spans[a.split("-")[2]]
    assert service == "baton-scheduler"
    assert first.trace_id.hex() == trace_id
    assert first.parent_span_id.hex() == parent_id
    assert first.name == "baton.scheduler.decide"
    assert first.end_time_unix_nano >= first.start_time_unix_nano > 0
    assert {kv.key: kv.value for kv in first.attributes} == {
        "baton.run_id": AnyValue(string_value="r1"),
        "baton.command": AnyValue(string_value="CompleteStep"),
        "baton.n": AnyValue(int_value=3),
    }
    _, second = spans[b.split("-")[2]]
    assert second.parent_span_id.hex() == a.split("-")[2]
    assert second.status.code == Status.STATUS_CODE_ERROR
    assert any(
        kv.key == "error.type" and kv.value.string_value == "ValueError" for kv in second.attributes
    )
    assert root.split("-")[1] != trace_id
    assert root.split("-")[2] in spans
    assert not any(s.name == "baton.x" for _, s in spans.values())


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def export(self, data: bytes) -> None:
        self.sent.append(data)


def test_a_full_hot_span_queue_drops_the_oldest_and_counts_them() -> None:
    transport = _Transport()
    spans = HotSpans(transport, {"service.name": "t"}, schedule_delay=60, max_queue=3)
    trace_id, parent_id = PARENT.split("-")[1:3]
    for n in range(5):
        with HotSpan(spans, f"s{n}", trace_id, parent_id, {"n": n}):
            pass
    spans.shutdown()  # exports what is queued
    assert spans.dropped == 2
    [data] = transport.sent
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    names = [s.name for s in request.resource_spans[0].scope_spans[0].spans]
    assert names == ["s2", "s3", "s4"]


TRACEPARENTS = [
    PARENT,
    PARENT[:-2] + "00",  # not sampled
    PARENT[:-2] + "03",
    PARENT[:-2] + "02",
    PARENT[:-2] + "ff",
    PARENT[:-2] + "0e",
    "01" + PARENT[2:],  # a later version, same shape
    "ff" + PARENT[2:],  # the invalid version
    "fe" + PARENT[2:],
    "0f" + PARENT[2:],
    PARENT.upper(),
    PARENT + "-extra",
    PARENT + "\n",
    PARENT[:-1],
    "00-" + "0" * 32 + "-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
    "00-" + "0" * 32 + "-b7ad6b7169203331-00",
    "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-00",
    PARENT.replace("-", "_"),
    PARENT.replace("b", "g"),
    " " + PARENT[1:],
    "",
    "00",
]


def test_a_hot_span_reads_its_parent_as_parse_traceparent_does(
    receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver[0]}
    assert telemetry.configure_tracing("scheduler", env=env) is True
    try:
        for parent in TRACEPARENTS:
            parsed = telemetry.parse_traceparent(parent)
            opened = telemetry.hot_span("baton.x", parent=parent, attributes={})
            sampled = parsed is not None and bool(parsed[2] & 1)
            assert isinstance(opened, HotSpan) is sampled, parent
            if parsed is None:  # an SDK span, whose sampler may start a new trace
                assert not isinstance(opened, nullcontext), parent
            if parsed is not None and not sampled:
                with opened as passed:
                    assert passed == parent  # the parent-based sampler records no child
            if sampled:
                assert parsed is not None
                with opened as child:
                    assert child is not None
                    assert child.split("-")[:2] == ["00", parsed[0]]
                    assert child.split("-")[3] == "01"
    finally:
        telemetry.shutdown_tracing()


def test_hot_spans_follow_the_batch_processors_queue_and_batch_settings(
    receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    url, requests = receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_BSP_MAX_QUEUE_SIZE": "3",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2",
    }
    assert telemetry.configure_tracing("scheduler", env=env) is True
    try:
        for n in range(5):
            with telemetry.hot_span(f"baton.s{n}", parent=PARENT, attributes={}):
                pass
    finally:
        telemetry.shutdown_tracing()  # exports what is queued, two spans a request
    exported = [[s.name for s in r.resource_spans[0].scope_spans[0].spans] for r in requests]
    assert exported == [["baton.s2", "baton.s3"], ["baton.s4"]]
