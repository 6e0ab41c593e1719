"""Spans for a hot path, recorded as tuples and sent as OTLP protobuf from a background thread.

The scheduler decides one command in about a millisecond; an OpenTelemetry SDK span costs
a large part of that (its ``Span`` object, attribute validation, context attach, and the
exporter's per-span encoding), and the cost showed in scheduler throughput (ADR 0810).
A hot span is a slotted context manager whose end appends a tuple to a bounded deque: ids
from ``random.getrandbits`` as the SDK's id generator makes them, times from
``time.time_ns``. A daemon thread drains the deque every schedule delay (the SDK batch
processor's ``OTEL_BSP_*`` settings) into ``ExportTraceServiceRequest``s written straight
in protobuf's wire format from the tuples (:mod:`baton_common.otlp_wire`, ADR 0820) and
posts them through the SDK's own OTLP/HTTP client (endpoint, headers, compression, timeout
and retries from the standard ``OTEL_*`` variables).
"""

from __future__ import annotations

import atexit
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from baton_common.otlp_wire import (
    AttributeValue,
    encode_request,
    encode_resource,
    encode_scope,
    encode_span,
)

__all__ = ["HotSpan", "HotSpans", "Transport"]

# trace id (hex), span id, parent span id (hex), name, start ns, end ns, attributes, error type
Record = tuple[str, int, str, str, int, int, Mapping[str, AttributeValue], str | None]


class Transport(Protocol):
    """What posts a serialized export request (the SDK's OTLP/HTTP client)."""

    def export(self, data: bytes) -> Any: ...


class HotSpan:
    """One hot span, begun when made, a context manager yielding the ``traceparent`` its
    block's records carry: a child of ``parent_id`` in ``trace_id`` (hex, as in a
    ``traceparent``). Leaving the block queues the span in ``owner`` (with the exception's
    type, if one left it)."""

    __slots__ = ("_attributes", "_began", "_name", "_owner", "_parent_id", "_span_id", "_trace_id")

    def __init__(
        self,
        owner: HotSpans,
        name: str,
        trace_id: str,
        parent_id: str,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._owner = owner
        self._trace_id = trace_id
        self._parent_id = parent_id
        self._name = name
        self._attributes = attributes
        self._span_id = random.getrandbits(64) or 1  # as the SDK's random id generator
        self._began = time.time_ns()

    def __enter__(self) -> str:
        return f"00-{self._trace_id}-{self._span_id:016x}-01"

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        owner = self._owner
        queue = owner._queue
        if len(queue) == queue.maxlen:
            owner.dropped += 1
        queue.append(
            (
                self._trace_id,
                self._span_id,
                self._parent_id,
                self._name,
                self._began,
                time.time_ns(),
                self._attributes,
                None if kind is None else kind.__name__,
            )
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
        self._resource = encode_resource(resource)
        self._scope = encode_scope("baton")
        self._delay = schedule_delay
        self._batch = max_batch
        self._queue: deque[Record] = deque(maxlen=max_queue)
        self._wake = threading.Event()
        self._stopping = False
        self.dropped = 0  # spans lost to a full queue (the oldest go first)
        self._thread = threading.Thread(target=self._loop, name="baton-hot-spans", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # as the SDK's provider does: queued spans are sent

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
