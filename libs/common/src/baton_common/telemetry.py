"""Tracing for every Baton service: OpenTelemetry spans joined by the W3C ``traceparent``.

A record's envelope carries ``traceparent`` (the CloudEvents distributed-tracing
extension, on Kafka as the ``ce_traceparent`` header). Each hop opens a span whose parent
is the incoming ``traceparent`` and writes its own span's ``traceparent`` into the records
it produces, so one webhook is one trace across ingest, scheduler, executor, approvals and
audit (ADR 0800).

Tracing is configured by the standard ``OTEL_*`` environment variables, read by the
OpenTelemetry SDK itself. It is on only when an OTLP endpoint is named
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and
``OTEL_SDK_DISABLED`` is not ``true``; otherwise :func:`span` yields ``None`` at the cost of
one ``if`` and incoming ``traceparent`` values pass through unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from baton_common.hot_spans import HotSpan

if TYPE_CHECKING:
    from baton_common.hot_spans import HotSpans

__all__ = [
    "SpanKind",
    "add_trace_ids",
    "configure_tracing",
    "current_traceparent",
    "hot_span",
    "parse_traceparent",
    "record_span",
    "shutdown_tracing",
    "span",
    "tracing_enabled",
]

AttributeValue = str | int | float | bool
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_HEX: Final = frozenset("0123456789abcdef")
_LOG_KEYS: Final = {"baton.run_id": "run_id", "baton.story_id": "story_id", "baton.step": "step"}


class _State:
    tracer: trace.Tracer | None = None
    provider: Any = None
    hot: HotSpans | None = None


def _endpoint_named(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install an OTLP/HTTP span exporter when the ``OTEL_*`` variables name an endpoint.

    Args:
        service: the default ``service.name`` (``OTEL_SERVICE_NAME`` wins when set).
        env: the environment to read; the process environment by default.

    Returns:
        Whether tracing is on.
    """
    env = os.environ if env is None else env
    if not _endpoint_named(env):
        _State.tracer = None
        return False
    # imported here: a process without tracing never loads the SDK
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME") or f"baton-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    # the endpoint as the SDK derives it, from ``env``; headers, timeout and compression
    # come from the process's OTEL_* variables
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _State.provider = provider
    _State.tracer = provider.get_tracer("baton")
    _State.hot = _hot_spans(provider, OTLPSpanExporter(endpoint=endpoint), env)
    return True


def _hot_spans(provider: Any, exporter: Any, env: Mapping[str, str]) -> HotSpans | None:
    """The hot-path recorder, when the sampler follows the parent and the exporter's
    OTLP/HTTP client can post a serialized request (ADR 0810); otherwise hot spans are SDK
    spans."""
    from opentelemetry.sdk.trace.sampling import ParentBased

    from baton_common.hot_spans import HotSpans, Transport

    transport: Transport | None = getattr(exporter, "_client", None)  # endpoint, TLS, retries
    if transport is None or not isinstance(provider.sampler, ParentBased):
        return None
    resource = {
        k: v
        for k, v in provider.resource.attributes.items()
        if isinstance(v, str | bool | int | float)
    }
    # the batch processor's settings, as the SDK reads them; the queue holds 20,000 by
    # default (the SDK's 2,048 is under half a schedule delay of one scheduler's commands)
    return HotSpans(
        transport,
        resource,
        schedule_delay=_positive(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
        max_queue=int(_positive(env, "OTEL_BSP_MAX_QUEUE_SIZE", 20_000)),
        max_batch=int(_positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 2048)),
    )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number from ``env``; the default when unset or not one (as the SDK does)."""
    try:
        value = float(env.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def shutdown_tracing() -> None:
    """Flush and stop the exporter (spans still queued are sent)."""
    if _State.hot is not None:
        _State.hot.shutdown()
    _State.hot = None
    if _State.provider is not None:
        _State.provider.shutdown()
    _State.provider = None
    _State.tracer = None


def tracing_enabled() -> bool:
    """Whether :func:`configure_tracing` turned tracing on."""
    return _State.tracer is not None


def span(
    name: str,
    *,
    parent: str | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span | None]:
    """A span, current for the block; ``None`` when tracing is off.

    With tracing off nothing is made but the call: hot paths (a webhook, a routed event,
    a step attempt, an outbound request) open a span each without checking first.

    Args:
        name: the span's name (``baton.<service>.<what>``).
        parent: an incoming W3C ``traceparent``; when None the current span (if any) is
            the parent, and with none the span starts a new trace.
        attributes: span attributes; ``None`` values are left out. Never pass a secret:
            attributes leave the process. ``baton.run_id``, ``baton.story_id`` and
            ``baton.step`` are also bound to the block's log lines.
        kind: the OpenTelemetry span kind.
    """
    tracer = _State.tracer
    if tracer is None:
        return _NO_SPAN
    return _sdk_span(tracer, name, parent, attributes, kind)


_NO_SPAN: Final[AbstractContextManager[None]] = nullcontext()


@contextmanager
def _sdk_span(
    tracer: Any,
    name: str,
    parent: str | None,
    attributes: Mapping[str, AttributeValue | None] | None,
    kind: SpanKind,
) -> Iterator[Span]:
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
    logged = {_LOG_KEYS[k]: v for k, v in attrs.items() if k in _LOG_KEYS}
    with (
        tracer.start_as_current_span(
            name, context=context, kind=kind, attributes=attrs, record_exception=False
        ) as current,
        structlog.contextvars.bound_contextvars(**logged),
    ):
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            current.set_attribute("error.type", type(exc).__name__)
            raise


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """A W3C ``traceparent``'s trace id, parent span id (hex) and flags; None if malformed."""
    if value is None or len(value) != 55 or value[2] != "-" or value[35] != "-":
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:]
    if version == "ff" or not _HEX.issuperset(value[:2] + trace_id + span_id + flags):
        return None
    if value[52] != "-" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


def hot_span(
    name: str, *, parent: str | None, attributes: Mapping[str, AttributeValue]
) -> AbstractContextManager[str | None]:
    """A span for a hot path (one per scheduler command), a context manager yielding the
    ``traceparent`` that records caused in the block carry.

    Under a sampled ``parent`` it is a :class:`~baton_common.hot_spans.HotSpan`: queued as a
    tuple when the block ends and exported in a background thread, at a small part of an
    SDK span's cost (ADRs 0810, 0820); it is not the current span, so log lines inside the
    block carry no trace ids and nested spans don't nest under it. Without a valid parent
    it is an SDK :func:`span` (its sampler may start a new trace); with tracing off, or an
    unsampled parent, ``parent`` is yielded unchanged.
    """
    hot = _State.hot
    if (
        hot is not None
        and parent is not None
        and (found := _HOT_PARENT.match(parent))
        and found[1] != _ZERO_TRACE
        and found[2] != _ZERO_SPAN
    ):
        if found[3] in "13579bdf":
            return HotSpan(hot, name, found[1], found[2], attributes)
        return nullcontext(parent)  # the parent-based sampler records no child
    if _State.tracer is None:
        return nullcontext(parent)
    return _sdk_hot_span(name, parent, attributes)


# parse_traceparent's rules in one match (55 characters, lowercase hex, version not ff):
# the trace id, the parent span id and the flags' last hex digit (odd when sampled)
_HOT_PARENT: Final = re.compile(
    r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]([0-9a-f])\Z"
)
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


@contextmanager
def _sdk_hot_span(
    name: str, parent: str | None, attributes: Mapping[str, AttributeValue]
) -> Iterator[str | None]:
    with span(name, parent=parent, attributes=attributes):
        yield current_traceparent(parent)


def record_span(
    name: str,
    *,
    parent: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> str | None:
    """Record a finished span (a wait that began earlier, or a step inside a batch).

    Args:
        name: the span's name.
        parent: the W3C ``traceparent`` of its parent; nothing is recorded without one.
        start: when it began (now when None).
        end: when it ended (now when None).
        attributes: span attributes, ``None`` values left out; never a secret.

    Returns:
        The recorded span's ``traceparent`` (a record caused by the span carries it), or
        ``parent`` when nothing was recorded.
    """
    tracer = _State.tracer
    if tracer is None or not parent:
        return parent
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    context = _PROPAGATOR.extract({"traceparent": parent})
    began = _nanos(start) if start is not None else None
    current = tracer.start_span(name, context=context, attributes=attrs, start_time=began)
    current.end(end_time=_nanos(end) if end is not None else None)
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
    return carrier.get("traceparent", parent)


def _nanos(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


def current_traceparent(fallback: str | None = None) -> str | None:
    """The current span's W3C ``traceparent``, or ``fallback`` when no span is recording.

    Outbound records carry this, so the next hop's span is a child of this one; with
    tracing off the incoming ``traceparent`` (the fallback) passes through unchanged.
    """
    if fallback is not None and not _TRACEPARENT.match(fallback):
        fallback = None  # a malformed header from outside is not passed on
    if _State.tracer is None:
        return fallback
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", fallback)


def add_trace_ids(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    if _State.tracer is None:
        return event
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
