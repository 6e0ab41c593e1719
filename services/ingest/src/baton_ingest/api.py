"""The webhook endpoint: check, make durable in Kafka, then answer 202.

``POST /webhooks/{path}`` answers 202 only once the event is acknowledged by Kafka
(``acks=all``), so an accepted webhook is never lost. Every refusal is JSON
``{"detail": reason}`` with a status a sender can act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final, NoReturn

import orjson
import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from baton_common.catalog import StoryCatalog
from baton_common.ids import uuid4_text
from baton_common.telemetry import SpanKind, current_traceparent, span
from baton_ingest.auth import AuthFailure, WebhookAuth
from baton_ingest.bodies import JSON_TYPES, NDJSON_TYPES, BodyError, parse_json, parse_ndjson
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.received_records import received_record
from baton_ingest.secrets import SecretResolver
from baton_ingest.settings import IngestSettings

__all__ = ["WebhookFastPath", "webhook_endpoint", "webhook_routes"]

log = structlog.get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def webhook_routes(endpoint: Endpoint) -> APIRouter:
    """``POST /webhooks/{path}`` answered by ``endpoint``.

    A plain Starlette route: the hot path skips FastAPI's per-request dependency solving.
    """
    router = APIRouter(tags=["webhooks"])
    router.add_route("/webhooks/{path}", endpoint, methods=["POST"])
    return router


class WebhookFastPath:
    """ASGI middleware that answers ``POST /webhooks/{path}`` without routing.

    Every request passes through FastAPI's exception and routing layers, which cost
    about as much CPU as the webhook itself (ADR 0220). This middleware sits where
    ``add_middleware`` puts it (inside the server-error layer, so a crash is still a
    500) and hands a request whose path matches ``/webhooks/{path}`` exactly as the
    route would to the same endpoint, rendering an ``HTTPException`` as FastAPI's
    handler does. Anything else — another method or path, a ``root_path`` — goes on to
    the app, so the route stays the reference behaviour.
    """

    def __init__(self, app: ASGIApp, endpoint: Endpoint) -> None:
        self._app = app
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if (
                path.startswith(_PREFIX)
                and len(path) > len(_PREFIX)
                and "/" not in path[len(_PREFIX) :]
            ):
                scope["path_params"] = {"path": path[len(_PREFIX) :]}
                request = Request(scope, receive, send)
                try:
                    response = await self._endpoint(request)
                except StarletteHTTPException as exc:
                    response = await http_exception_handler(request, exc)
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


def webhook_endpoint(
    *,
    settings: IngestSettings,
    catalog: StoryCatalog,
    catalog_ready: asyncio.Event,
    publisher: Publisher,
    secrets: SecretResolver,
    metrics: IngestMetrics,
    clock: Callable[[], datetime] = _utcnow,
) -> Endpoint:
    """The webhook handler, over the given catalog and publisher."""
    budget = _Budget()
    auth = WebhookAuth(secrets)
    retry_after = {"Retry-After": str(settings.retry_after_seconds)}

    def reject(
        status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> NoReturn:
        metrics.rejected.labels(reason=reason).inc()
        log.info("webhook rejected", status=status, reason=reason, detail=detail)
        raise HTTPException(status_code=status, detail=detail, headers=headers)

    async def receive_webhook(request: Request) -> Response:
        """Accept an event for the stories listening on ``path``."""
        path: str = request.path_params["path"]
        structlog.contextvars.bind_contextvars(webhook=path)
        incoming = request.headers.get("traceparent")
        try:
            with span(
                "baton.ingest.webhook",
                parent=incoming,
                kind=SpanKind.SERVER,
                attributes={"baton.webhook": path, "http.request.method": "POST"},
            ):
                return await _receive(path, request, incoming)
        finally:
            structlog.contextvars.unbind_contextvars("webhook")

    async def _receive(path: str, request: Request, incoming: str | None) -> Response:
        if not catalog_ready.is_set():
            reject(503, "not_ready", "the story catalog is still loading", retry_after)
        stories = [
            s for s in catalog.for_webhook(path) if s.trigger.webhook and s.trigger.webhook.http
        ]
        if not stories:
            reject(404, "not_found", f"no active story listens on webhook path {path!r}")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES | NDJSON_TYPES:
            reject(
                415,
                "unsupported_media_type",
                "content-type must be application/json or application/x-ndjson, "
                f"got {media_type or 'none'!r}",
            )
        body = await _read_body(request, settings.max_body_bytes, reject)
        now = clock()
        try:
            authenticated = auth.check(stories, request.headers, body, now)
        except AuthFailure as failure:
            reject(failure.status, failure.reason, failure.detail, failure.headers)
        try:
            if media_type in NDJSON_TYPES:
                events = parse_ndjson(body, settings.max_ndjson_lines)
            else:
                events = [parse_json(body)]
        except BodyError as exc:
            metrics.rejected.labels(reason="invalid_json").inc()
            log.info("webhook rejected", status=422, reason="invalid_json", detail=exc.detail)
            content: dict[str, object] = {"detail": exc.detail}
            if exc.errors:
                content["errors"] = exc.errors
            return JSONResponse(content, status_code=422)

        if budget.used + len(events) > settings.max_in_flight:
            reject(429, "overloaded", "too many webhooks awaiting Kafka; retry later", retry_after)
        budget.used += len(events)
        try:
            ids = await _publish_all(path, events, now, current_traceparent(incoming))
        finally:
            budget.used -= len(events)
        auth.remember(authenticated, now)
        metrics.accepted.inc(len(events))
        log.debug("webhook accepted", ids=ids, stories=[s.id for s in stories])
        if media_type in NDJSON_TYPES:
            return _accepted({"ids": ids, "accepted": len(ids)})
        return _accepted({"id": ids[0], "accepted": True})

    async def _publish_all(
        path: str, events: list[dict[str, JsonValue]], now: datetime, traceparent: str | None
    ) -> list[str]:
        """Publish every event and wait for all acks; 503 if any is not durable."""
        ids = [uuid4_text() for _ in events]
        records = [
            received_record(
                settings.topics.ingest,
                path,
                payload,
                id=event_id,
                time=now,
                traceparent=traceparent,
            )
            for event_id, payload in zip(ids, events, strict=True)
        ]
        started = time.perf_counter()
        results: list[BaseException | None]
        if len(records) == 1:  # the common case, without a task per record
            try:
                async with asyncio.timeout(settings.publish_timeout_seconds):
                    await publisher.publish(records[0])
                results = [None]
            except Exception as exc:
                results = [exc]
        else:
            results = await asyncio.gather(
                *(
                    asyncio.wait_for(publisher.publish(r), timeout=settings.publish_timeout_seconds)
                    for r in records
                ),
                return_exceptions=True,
            )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            durable = len(results) - len(failures)
            first = failures[0]
            partial = (
                f"; {durable} of {len(records)} events were written and will be processed"
                if durable
                else ""
            )
            if isinstance(first, TimeoutError):
                reject(
                    503,
                    "kafka_timeout",
                    f"Kafka did not acknowledge within {settings.publish_timeout_seconds}s"
                    + partial,
                    retry_after,
                )
            log.warning("webhook publish failed", error=f"{type(first).__name__}: {first}")
            reject(503, "kafka_error", "the event could not be made durable" + partial, retry_after)
        metrics.publish_seconds.observe(time.perf_counter() - started)
        return ids

    return receive_webhook


Reject = Callable[..., NoReturn]
Endpoint = Callable[[Request], Awaitable[Response]]
_PREFIX: Final = "/webhooks/"


def _accepted(content: dict[str, object]) -> Response:
    """202 with ``content`` as compact JSON (what ``JSONResponse`` writes, by orjson)."""
    return Response(orjson.dumps(content), status_code=202, media_type="application/json")


class _Budget:
    """Events awaiting Kafka's ack; the loop is single-threaded, so a counter suffices."""

    used: int = 0


async def _read_body(request: Request, limit: int, reject: Reject) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        reject(413, "too_large", f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            reject(413, "too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
