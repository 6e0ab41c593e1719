"""Hot spans written in the protobuf wire format are the bytes the protobuf library writes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from baton_common.hot_spans import HotSpans
from baton_common.otlp_wire import (
    AttributeValue,
    encode_request,
    encode_resource,
    encode_scope,
    encode_span,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _library_span(
    span_id: int,
    name: str,
    start: int,
    end: int,
    attributes: Mapping[str, AttributeValue],
    error: str | None,
) -> Span:
    """The span as the protobuf classes build it (what hot spans were encoded with)."""
    if error is not None:
        attributes = {**attributes, "error.type": error}
    return Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=bytes.fromhex(PARENT),
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=[KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()],
        status=None if error is None else Status(code=Status.STATUS_CODE_ERROR, message=error),
    )


Case = tuple[int, str, int, int, dict[str, AttributeValue], str | None]
CASES: list[Case] = [
    (1, "baton.scheduler.decide", 1, 2, {}, None),
    (
        2**64 - 1,
        "baton.scheduler.decide",
        1_764_561_600_123_456_789,
        1_764_561_600_123_999_999,
        {"baton.run_id": "7c1e0e9a-4f7e-4d5e-9c2b-5a1f0d3e2b1a", "baton.command": "StartRun"},
        None,
    ),
    (12345, "", 0, 0, {"": "", "flag": False, "on": True, "zero": 0}, ""),
    (
        0x0102030405060708,
        "n" * 200,
        2**63,
        2**64 - 1,
        {"neg": -1, "big": 2**63 - 1, "min": -(2**63), "f": 0.1, "nf": -2.5e300, "z": 0.0},
        "ValueError",
    ),
    (77, "ünïcode ✓", 5, 6, {"k" * 130: "v" * 20_000, "ü": "✓"}, "E" * 300),
    (  # around the lengths where one length byte stops being enough
        2**40,
        "baton.scheduler.decide",
        1,
        0,
        {"k" * 77: "v" * 39, "j" * 78: "w" * 40, "x": "y" * 127, "z": "é" * 20, "é": "e" * 38},
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_a_span_is_the_bytes_the_protobuf_library_writes(case: Case) -> None:
    span_id, name, start, end, attributes, error = case
    written = encode_span(TRACE, span_id, PARENT, name, start, end, attributes, error)
    expected = _library_span(span_id, name, start, end, attributes, error)
    assert written == expected.SerializeToString()
    assert Span.FromString(written) == expected


def test_a_request_is_the_bytes_the_protobuf_library_writes() -> None:
    resource = Resource(attributes=[KeyValue(key="service.name", value=_any_value("baton-x"))])
    scope = InstrumentationScope(name="baton")
    spans = [_library_span(*case) for case in CASES]
    expected = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])
        ]
    )
    assert encode_resource({"service.name": "baton-x"}) == resource.SerializeToString()
    assert encode_scope("baton") == scope.SerializeToString()
    written = encode_request(
        encode_resource({"service.name": "baton-x"}),
        encode_scope("baton"),
        [encode_span(TRACE, c[0], PARENT, *c[1:]) for c in CASES],
    )
    assert written == expected.SerializeToString()
    assert ExportTraceServiceRequest.FromString(written) == expected


class _Transport:
    def export(self, data: bytes) -> None:
        return


def test_hot_spans_encode_their_records_with_the_resource_and_scope() -> None:
    resource: dict[str, AttributeValue] = {"service.name": "baton-scheduler", "n": 1, "f": 0.5}
    spans = HotSpans(_Transport(), resource, schedule_delay=60)
    try:
        records = [(TRACE, c[0], PARENT, *c[1:]) for c in CASES]
        request = ExportTraceServiceRequest.FromString(spans.encode(records))
    finally:
        spans.shutdown()
    [resource_spans] = request.resource_spans
    assert {kv.key: kv.value for kv in resource_spans.resource.attributes} == {
        "service.name": AnyValue(string_value="baton-scheduler"),
        "n": AnyValue(int_value=1),
        "f": AnyValue(double_value=0.5),
    }
    [scope_spans] = resource_spans.scope_spans
    assert scope_spans.scope.name == "baton"
    assert list(scope_spans.spans) == [_library_span(*case) for case in CASES]
