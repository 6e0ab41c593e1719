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

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from baton_common.otlp_wire import encode_request, encode_span

__all__ = ["HotSpan", "HotSpans", "Transport"]

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


class HotSpan:
    """One open hot span, a context manager yielding the ``traceparent`` its block's records
    carry; leaving the block queues the span (with the exception's type, if one left it)."""

    __slots__ = ("_attributes", "_began", "_name", "_owner", "_parent_id", "_span_id", "_trace_id")

    def __init__(
        self,
        owner: HotSpans,
        trace_id: str,
        parent_id: str,
        name: str,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._owner = owner
        self._trace_id = trace_id
        self._parent_id = parent_id
        self._name = name
        self._attributes = attributes
        self._span_id, self._began = owner.start()

    def __enter__(self) -> str:
        return f"00-{self._trace_id}-{self._span_id:016x}-01"

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._owner.end(
            self._trace_id,
            self._span_id,
            self._parent_id,
            self._began,
            self._name,
            self._attributes,
            None if kind is None else kind.__name__,
        )


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
        ).SerializeToString()
        self._scope = InstrumentationScope(name="baton").SerializeToString()
        self._delay = schedule_delay
        self._batch = max_batch
        self._queue: deque[Record] = deque(maxlen=max_queue)
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0  # spans lost to a full queue (the oldest go first)
        self._thread = threading.Thread(target=self._loop, name="baton-hot-spans", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # as the SDK's provider does: queued spans are sent

    def span(
        self,
        trace_id: str,
        parent_id: str,
        name: str,
        attributes: Mapping[str, AttributeValue],
    ) -> HotSpan:
        """A span, child of ``parent_id`` in ``trace_id`` (hex, as in a ``traceparent``),
        begun now and queued when its block ends."""
        return HotSpan(self, trace_id, parent_id, name, attributes)

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
        return encode_request(self._resource, self._scope, (encode_span(*r) for r in records))
