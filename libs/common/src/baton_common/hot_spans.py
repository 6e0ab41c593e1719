"""Spans for a hot path, recorded as tuples and sent as OTLP protobuf from a background thread.

The scheduler decides one command in about a millisecond; an OpenTelemetry SDK span costs
a large part of that (its ``Span`` object, attribute validation, context attach, and the
exporter's per-span encoding), and the cost showed in scheduler throughput (ADR 0810).
A hot span is a tuple appended to a bounded deque: ids from ``random.getrandbits`` as the
SDK's id generator makes them, times from ``time.time_ns``. A daemon thread drains the
deque every schedule delay (``OTEL_BSP_SCHEDULE_DELAY``, as the SDK's batch processor) into
one ``ExportTraceServiceRequest`` built straight from the tuples and posts it through the
SDK's own OTLP/HTTP client (endpoint, headers, compression, timeout and retries from the
standard ``OTEL_*`` variables).
"""

from __future__ import annotations

import atexit
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

__all__ = ["HotSpans", "Transport"]

AttributeValue = str | int | float | bool
# trace id (hex), span id, parent span id (hex), name, start ns, end ns, attributes, error type
Record = tuple[str, int, str, str, int, int, Mapping[str, AttributeValue], str | None]


class Transport(Protocol):
    """What posts a serialized export request (the SDK's OTLP/HTTP client)."""

    def export(self, data: bytes) -> Any: ...


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


class HotSpans:
    """A bounded buffer of finished hot spans and the thread that exports them."""

    def __init__(
        self,
        transport: Transport,
        resource: Mapping[str, AttributeValue],
        *,
        schedule_delay: float = 5.0,
        max_queue: int = 20_000,
        max_batch: int = 2_048,
    ) -> None:
        self._transport = transport
        self._resource = Resource(
            attributes=[KeyValue(key=k, value=_any_value(v)) for k, v in resource.items()]
        )
        self._scope = InstrumentationScope(name="baton")
        self._delay = schedule_delay
        self._batch = max_batch
        self._queue: deque[Record] = deque(maxlen=max_queue)
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0  # spans lost to a full queue (the oldest go first)
        self._thread = threading.Thread(target=self._loop, name="baton-hot-spans", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # as the SDK's provider does: queued spans are sent

    @staticmethod
    def start() -> tuple[int, int]:
        """A new span's id and start time (ids as the SDK's random id generator makes them)."""
        return random.getrandbits(64) or 1, time.time_ns()

    def end(
        self,
        trace_id: str,
        span_id: int,
        parent_id: str,
        began: int,
        name: str,
        attributes: Mapping[str, AttributeValue],
        error: str | None = None,
    ) -> None:
        """Queue a finished span; ids are hex as in a ``traceparent`` (span id an int)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(
            (trace_id, span_id, parent_id, name, began, time.time_ns(), attributes, error)
        )

    def shutdown(self, timeout: float = 10.0) -> None:
        """Export what is queued and stop the thread."""
        atexit.unregister(self.shutdown)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._drain()
        self._drain()

    def _drain(self) -> None:
        # only what is queued now: spans keep arriving while this exports, and chasing
        # them would turn one export per delay into a stream of small ones
        left = len(self._queue)
        while left > 0:
            records = [self._queue.popleft() for _ in range(min(left, self._batch))]
            left -= len(records)
            try:
                self._transport.export(self.encode(records))
            except Exception:  # a lost export must never stop the thread
                continue

    def encode(self, records: Sequence[Record]) -> bytes:
        """One serialized OTLP ``ExportTraceServiceRequest`` holding ``records``."""
        spans = [
            Span(
                trace_id=bytes.fromhex(trace_id),
                span_id=span_id.to_bytes(8, "big"),
                parent_span_id=bytes.fromhex(parent_id),
                name=name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=[
                    KeyValue(key=k, value=_any_value(v))
                    for k, v in (
                        attributes if error is None else {**attributes, "error.type": error}
                    ).items()
                ],
                status=None
                if error is None
                else Status(code=Status.STATUS_CODE_ERROR, message=error),
            )
            for trace_id, span_id, parent_id, name, start, end, attributes, error in records
        ]
        scope = ScopeSpans(scope=self._scope, spans=spans)
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=self._resource, scope_spans=[scope])]
        )
        data: bytes = request.SerializeToString()
        return data
