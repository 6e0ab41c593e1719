"""The webhook endpoint: check, make durable in Kafka, then answer 202.

``POST /webhooks/{path}`` answers 202 only once the event is acknowledged by Kafka
(``acks=all``), so an accepted webhook is never lost. Every refusal is JSON
``{"detail": reason}`` with a status a sender can act on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NoReturn

import orjson
import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from pydantic import JsonValue
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from baton_common.catalog import StoryCatalog
from baton_common.ids import uuid4_text
from baton_common.telemetry import SpanKind, current_traceparent, span, tracing_enabled
from baton_ingest.auth import AuthFailure, WebhookAuth
from baton_ingest.bodies import (
    JSON_TYPES,
    NDJSON_TYPES,
    BodyError,
    parse_json_checked,
    parse_ndjson,
)
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.received_records import received_record
from baton_ingest.secrets import SecretResolver
from baton_ingest.settings import IngestSettings

__all__ = ["WebhookEndpoint", "WebhookFastPath", "webhook_endpoint", "webhook_routes"]

log = structlog.get_logger(__name__)
_debug = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def webhook_routes(endpoint: WebhookEndpoint) -> APIRouter:
    """``POST /webhooks/{path}`` answered by ``endpoint``.

    A plain Starlette route: the hot path skips FastAPI's per-request dependency solving.
    """
    router = APIRouter(tags=["webhooks"])
    router.add_route("/webhooks/{path}", endpoint.answer, methods=["POST"])
    return router


class WebhookFastPath:
    """ASGI middleware that answers ``POST /webhooks/{path}`` without routing.

    Every request passes through FastAPI's exception and routing layers, which cost
    about as much CPU as the webhook itself (ADR 0220). This middleware sits where
    ``add_middleware`` puts it (inside the server-error layer, so a crash is still a
    500) and hands a request whose path matches ``/webhooks/{path}`` exactly as the
    route would to the same endpoint, with no ``Request`` or ``Response`` object (ADR
    0250): the answer is two ASGI messages, and an ``HTTPException`` is rendered by
    FastAPI's own handler. Anything else — another method or path, a ``root_path`` —
    goes on to the app, so the route stays the reference behaviour.
    """

    def __init__(self, app: ASGIApp, endpoint: WebhookEndpoint) -> None:
        self._app = app
        self._accept = endpoint.accept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if (
                path.startswith(_PREFIX)
                and len(path) > len(_PREFIX)
                and "/" not in path[len(_PREFIX) :]
            ):
                try:
                    status, content = await self._accept(
                        path[len(_PREFIX) :], scope["headers"], receive
                    )
                except StarletteHTTPException as exc:
                    scope["path_params"] = {"path": path[len(_PREFIX) :]}
                    request = Request(scope, receive, send)
                    response = await http_exception_handler(request, exc)
                    await response(scope, receive, send)
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-length", str(len(content)).encode()),
                            _JSON_CONTENT,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": content})
                return
        await self._app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """The webhook handler: ``accept`` answers a request's status and JSON body from its
    path, raw ASGI headers and ``receive``; ``answer`` is the same as a Starlette
    endpoint."""

    accept: Accept

    async def answer(self, request: Request) -> Response:
        """The route's endpoint: what ``accept`` answers, as a ``Response``."""
        status, content = await self.accept(
            request.path_params["path"], request.scope["headers"], request.receive
        )
        return Response(content, status_code=status, media_type="application/json")


def webhook_endpoint(
    *,
    settings: IngestSettings,
    catalog: StoryCatalog,
    catalog_ready: asyncio.Event,
    publisher: Publisher,
    secrets: SecretResolver,
    metrics: IngestMetrics,
    clock: Callable[[], datetime] = _utcnow,
) -> WebhookEndpoint:
    """The webhook handler, over the given catalog and publisher."""
    budget = _Budget()
    auth = WebhookAuth(secrets)
    retry_after = {"Retry-After": str(settings.retry_after_seconds)}
    topic = settings.topics.ingest
    timeout = settings.publish_timeout_seconds
    accepted = metrics.accepted
    publish_seconds = metrics.publish_seconds

    def reject(
        path: str, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> NoReturn:
        metrics.rejected.labels(reason=reason).inc()
        log.info("webhook rejected", webhook=path, status=status, reason=reason, detail=detail)
        raise HTTPException(status_code=status, detail=detail, headers=headers)

    async def accept(path: str, raw: RawHeaders, receive: Receive) -> tuple[int, bytes]:
        """Accept an event for the stories listening on ``path``.

        Its log lines name the webhook themselves (binding it to the context per request
        cost more than the lines: ADR 0250).
        """
        content_type = length = incoming = None
        for name, value in raw:  # the first of a repeated header wins, as in Headers
            if name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length":
                if length is None:
                    length = value
            elif name == b"traceparent" and incoming is None:
                incoming = value
        traceparent = None if incoming is None else incoming.decode("latin-1")
        if not tracing_enabled():
            return await _receive(path, raw, content_type, length, traceparent, receive)
        with span(
            "baton.ingest.webhook",
            parent=traceparent,
            kind=SpanKind.SERVER,
            attributes={"baton.webhook": path, "http.request.method": "POST"},
        ):
            return await _receive(path, raw, content_type, length, traceparent, receive)

    async def _receive(
        path: str,
        raw: RawHeaders,
        content_type: bytes | None,
        length: bytes | None,
        incoming: str | None,
        receive: Receive,
    ) -> tuple[int, bytes]:
        if not catalog_ready.is_set():
            reject(path, 503, "not_ready", "the story catalog is still loading", retry_after)
        stories = [
            s for s in catalog.for_webhook(path) if s.trigger.webhook and s.trigger.webhook.http
        ]
        if not stories:
            reject(path, 404, "not_found", f"no active story listens on webhook path {path!r}")
        if content_type == b"application/json":  # the common case, as parsed below
            media_type = "application/json"
        else:
            text = "" if content_type is None else content_type.decode("latin-1")
            media_type = text.split(";")[0].strip().lower()
        if media_type not in _MEDIA_TYPES:
            reject(
                path,
                415,
                "unsupported_media_type",
                "content-type must be application/json or application/x-ndjson, "
                f"got {media_type or 'none'!r}",
            )
        body = await _read_body(path, length, receive, settings.max_body_bytes, reject)
        now = clock()
        try:
            authenticated = auth.check(stories, Headers(raw=raw), body, now)
        except AuthFailure as failure:
            reject(path, failure.status, failure.reason, failure.detail, failure.headers)
        checked = False  # whether orjson read the event (JSON types only)
        try:
            if media_type in NDJSON_TYPES:
                events = parse_ndjson(body, settings.max_ndjson_lines)
            else:
                event, checked = parse_json_checked(body)
                events = [event]
        except BodyError as exc:
            metrics.rejected.labels(reason="invalid_json").inc()
            log.info(
                "webhook rejected",
                webhook=path,
                status=422,
                reason="invalid_json",
                detail=exc.detail,
            )
            content: dict[str, object] = {"detail": exc.detail}
            if exc.errors:
                content["errors"] = exc.errors
            return 422, _json(content)

        if budget.used + len(events) > settings.max_in_flight:
            reject(
                path,
                429,
                "overloaded",
                "too many webhooks awaiting Kafka; retry later",
                retry_after,
            )
        budget.used += len(events)
        try:
            ids = await _publish_all(path, events, now, current_traceparent(incoming), checked)
        finally:
            budget.used -= len(events)
        auth.remember(authenticated, now)
        accepted.inc(len(events))
        if _debug.isEnabledFor(logging.DEBUG):  # the check, without structlog's proxy
            log.debug("webhook accepted", webhook=path, ids=ids, stories=[s.id for s in stories])
        if media_type in NDJSON_TYPES:
            return 202, orjson.dumps({"ids": ids, "accepted": len(ids)})
        return 202, b'{"id":"' + ids[0].encode() + b'","accepted":true}'

    async def _publish_all(
        path: str,
        events: list[dict[str, JsonValue]],
        now: datetime,
        traceparent: str | None,
        checked: bool,
    ) -> list[str]:
        """Publish every event and wait for all acks; 503 if any is not durable."""
        ids = [uuid4_text() for _ in events]
        records = [
            received_record(
                topic,
                path,
                payload,
                id=event_id,
                time=now,
                traceparent=traceparent,
                checked=checked,
            )
            for event_id, payload in zip(ids, events, strict=True)
        ]
        started = time.perf_counter()
        results = await publisher.deliver(records, timeout)
        if any(results):
            failures = [r for r in results if r is not None]
            durable = len(results) - len(failures)
            first = failures[0]
            partial = (
                f"; {durable} of {len(records)} events were written and will be processed"
                if durable
                else ""
            )
            if isinstance(first, TimeoutError):
                reject(
                    path,
                    503,
                    "kafka_timeout",
                    f"Kafka did not acknowledge within {settings.publish_timeout_seconds}s"
                    + partial,
                    retry_after,
                )
            log.warning(
                "webhook publish failed", webhook=path, error=f"{type(first).__name__}: {first}"
            )
            reject(
                path,
                503,
                "kafka_error",
                "the event could not be made durable" + partial,
                retry_after,
            )
        publish_seconds.observe(time.perf_counter() - started)
        return ids

    return WebhookEndpoint(accept)


Reject = Callable[..., NoReturn]
RawHeaders = list[tuple[bytes, bytes]]
Accept = Callable[[str, RawHeaders, Receive], Awaitable[tuple[int, bytes]]]
_PREFIX: Final = "/webhooks/"
_JSON_CONTENT: Final = (b"content-type", b"application/json")
_MEDIA_TYPES: Final = JSON_TYPES | NDJSON_TYPES


def _json(content: dict[str, object]) -> bytes:
    """``content`` as ``JSONResponse`` writes it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


class _Budget:
    """Events awaiting Kafka's ack; the loop is single-threaded, so a counter suffices."""

    used: int = 0


async def _read_body(
    path: str, length: bytes | None, receive: Receive, limit: int, reject: Reject
) -> bytes:
    """The request's body from its ASGI messages (as ``Request.stream`` reads them)."""
    if length is not None:
        declared = length.decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            reject(path, 413, "too_large", f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            reject(path, 413, "too_large", f"body exceeds the limit of {limit} bytes")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
