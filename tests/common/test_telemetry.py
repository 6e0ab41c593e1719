"""Tracing off by default, and what passes through a hop that does not trace."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from baton_common import telemetry

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


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_traced_hop_writes_its_own_span_as_the_parent(sink: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink}
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
