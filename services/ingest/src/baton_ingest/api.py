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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from baton_common.catalog import StoryCatalog
from baton_common.ids import uuid4_text
from baton_common.story import Story
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
from baton_ingest.publisher import HandsOver, Publisher
from baton_ingest.received_records import received_record
from baton_ingest.secrets import SecretResolver
from baton_ingest.settings import IngestSettings

__all__ = [
    "Answer",
    "Prepared",
    "Publishing",
    "WebhookEndpoint",
    "WebhookFastPath",
    "webhook_endpoint",
    "webhook_routes",
]

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
    0250): the answer is two ASGI messages, with the headers a refusal's
    ``HTTPException`` would get from FastAPI's handler. Anything else — another method
    or path, a ``root_path`` — goes on to the app, so the route stays the reference
    behaviour. When uvicorn serves this middleware with :class:`CorkedHttpTools`, the
    protocol answers most webhooks before any ASGI (``endpoint``, ADR 0263).
    """

    def __init__(self, app: ASGIApp, endpoint: WebhookEndpoint) -> None:
        self._app = app
        self.endpoint = endpoint
        self._accept = endpoint.accept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if (
                path.startswith(_PREFIX)
                and len(path) > len(_PREFIX)
                and "/" not in path[len(_PREFIX) :]
            ):
                status, headers, content = await self._accept(
                    path[len(_PREFIX) :], scope["headers"], receive
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            *headers,
                            (b"content-length", str(len(content)).encode()),
                            _JSON_CONTENT,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": content})
                return
        await self._app(scope, receive, send)


class Publishing:
    """A webhook's records handed to Kafka: its answer once every future settled.

    Each of ``waits`` settles that many consecutive records (``GatheredSends.hand``);
    a count of 0 marks a future whose result is already every record's outcome
    (``Publisher.deliver`` run as a task, for publishers that cannot hand over at once).
    """

    __slots__ = ("_finish", "waits")

    def __init__(
        self,
        waits: list[tuple[asyncio.Future[Any], int]],
        finish: Callable[[list[BaseException | None]], Answer],
    ) -> None:
        self.waits = waits
        self._finish = finish

    async def settled(self) -> None:
        """Return once every future is done (whatever its outcome)."""
        for waiter, _ in self.waits:
            if not waiter.done():
                await asyncio.wait((waiter,))

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the loop) once every future is done."""
        pending = [waiter for waiter, _ in self.waits if not waiter.done()]
        if not pending:
            asyncio.get_running_loop().call_soon(callback)
            return
        left = [len(pending)]

        def one_done(_: asyncio.Future[Any]) -> None:
            left[0] -= 1
            if not left[0]:
                callback()

        for waiter in pending:
            waiter.add_done_callback(one_done)

    def answer(self) -> Answer:
        """The answer, once settled: 202, or 503 if any record is not durable."""
        results: list[BaseException | None] = []
        for waiter, count in self.waits:
            if count == 0:
                results.extend(waiter.result())
                continue
            error = waiter.exception() if not waiter.cancelled() else asyncio.CancelledError()
            results.extend([error] * count)
        return self._finish(results)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """The webhook handler, one logic for every entry (ADR 0263).

    ``prepare`` checks what the head decides (ready, a story listening, content type,
    declared size) and ``take`` the body (size, auth, parsing, the in-flight budget),
    then hands the events to Kafka: each returns the answer at once, or
    :class:`Publishing` to wait for before the answer. ``accept`` runs both over ASGI
    (``WebhookFastPath``), ``answer`` is a Starlette endpoint, and ``respond`` is the
    same for a whole request at once (``CorkedHttpTools`` answers from the parser).
    """

    prepare: Callable[[str, RawHeaders], Answer | Prepared]
    take: Callable[[Prepared, bytes], Answer | Publishing]
    max_body_bytes: int

    def respond(self, path: str, raw: RawHeaders, body: bytes) -> Answer | Publishing:
        """A webhook whose headers and body are all here: its answer, or its publishing."""
        prepared = self.prepare(path, raw)
        if type(prepared) is tuple:
            return prepared
        return self.take(prepared, body)  # type: ignore[arg-type]

    async def accept(self, path: str, raw: RawHeaders, receive: Receive) -> Answer:
        """A webhook's answer, its body read from ASGI ``receive``."""
        if not tracing_enabled():
            return await self._accept(path, raw, receive)
        incoming = next((value for field, value in raw if field == b"traceparent"), None)
        try:
            with span(
                "baton.ingest.webhook",
                parent=None if incoming is None else incoming.decode("latin-1"),
                kind=SpanKind.SERVER,
                attributes={"baton.webhook": path, "http.request.method": "POST"},
            ):
                answer = await self._accept(path, raw, receive)
                if answer[0] >= 400 and answer[0] != 422:  # a refusal: the span's error
                    raise _Refused(answer)
                return answer
        except _Refused as refused:
            return refused.answer

    async def _accept(self, path: str, raw: RawHeaders, receive: Receive) -> Answer:
        prepared = self.prepare(path, raw)
        if type(prepared) is tuple:
            return prepared
        assert isinstance(prepared, Prepared)
        body = await _read_body(receive, self.max_body_bytes)
        outcome = self.take(prepared, body)
        if type(outcome) is tuple:
            return outcome
        assert isinstance(outcome, Publishing)
        await outcome.settled()
        return outcome.answer()

    async def answer(self, request: Request) -> Response:
        """The route's endpoint: what ``accept`` answers, as a ``Response``."""
        status, headers, content = await self.accept(
            request.path_params["path"], request.scope["headers"], request.receive
        )
        response = Response(content, status_code=status, media_type="application/json")
        response.raw_headers[:0] = headers
        return response


class Prepared:
    """A webhook past the checks of its head: what ``take`` goes on from."""

    __slots__ = ("media_type", "path", "raw", "stories", "traceparent")

    def __init__(
        self,
        path: str,
        raw: RawHeaders,
        stories: list[Story],
        media_type: str,
        traceparent: str | None,
    ) -> None:
        self.path = path
        self.raw = raw
        self.stories = stories
        self.media_type = media_type
        self.traceparent = traceparent


class _Refused(Exception):
    """A refusal carried out of a span, so the span records it as an error."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[0])
        self.answer = answer


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
    limit = settings.max_body_bytes
    accepted = metrics.accepted
    publish_seconds = metrics.publish_seconds
    hand = publisher.hand if isinstance(publisher, HandsOver) else None

    def reject(
        path: str, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> Answer:
        metrics.rejected.labels(reason=reason).inc()
        log.info("webhook rejected", webhook=path, status=status, reason=reason, detail=detail)
        return _refusal(status, detail, headers)

    def prepare(path: str, raw: RawHeaders) -> Answer | Prepared:
        """The checks a webhook's head decides, in the order the route always made them.

        Its log lines name the webhook themselves (binding it to the context per request
        cost more than the lines: ADR 0250).
        """
        content_type = length = incoming = None
        for field, value in raw:  # the first of a repeated header wins, as in Headers
            if field == b"content-type":
                if content_type is None:
                    content_type = value
            elif field == b"content-length":
                if length is None:
                    length = value
            elif field == b"traceparent" and incoming is None:
                incoming = value
        if not catalog_ready.is_set():
            return reject(path, 503, "not_ready", "the story catalog is still loading", retry_after)
        stories = [
            s for s in catalog.for_webhook(path) if s.trigger.webhook and s.trigger.webhook.http
        ]
        if not stories:
            return reject(
                path, 404, "not_found", f"no active story listens on webhook path {path!r}"
            )
        if content_type == b"application/json":  # the common case, as parsed below
            media_type = "application/json"
        else:
            text = "" if content_type is None else content_type.decode("latin-1")
            media_type = text.split(";")[0].strip().lower()
        if media_type not in _MEDIA_TYPES:
            return reject(
                path,
                415,
                "unsupported_media_type",
                "content-type must be application/json or application/x-ndjson, "
                f"got {media_type or 'none'!r}",
            )
        if length is not None:
            declared = length.decode("latin-1")
            if declared.isdigit() and int(declared) > limit:
                return reject(
                    path, 413, "too_large", f"body is {declared} bytes; the limit is {limit}"
                )
        traceparent = None if incoming is None else incoming.decode("latin-1")
        return Prepared(path, raw, stories, media_type, traceparent)

    def take(prepared: Prepared, body: bytes) -> Answer | Publishing:
        """The checks of the body, then the events handed to Kafka."""
        path = prepared.path
        if len(body) > limit:
            return reject(path, 413, "too_large", f"body exceeds the limit of {limit} bytes")
        stories = prepared.stories
        now = clock()
        try:
            authenticated = auth.check(stories, Headers(raw=prepared.raw), body, now)
        except AuthFailure as failure:
            return reject(path, failure.status, failure.reason, failure.detail, failure.headers)
        media_type = prepared.media_type
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
            return 422, [], _json(content)

        count = len(events)
        if budget.used + count > settings.max_in_flight:
            return reject(
                path,
                429,
                "overloaded",
                "too many webhooks awaiting Kafka; retry later",
                retry_after,
            )
        ids = [uuid4_text() for _ in events]
        traceparent = current_traceparent(prepared.traceparent)
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
        waits: list[tuple[asyncio.Future[Any], int]] | None = (
            None if hand is None else hand(records, timeout)
        )
        if waits is None:  # the publisher needs a coroutine for these
            waits = [(asyncio.ensure_future(publisher.deliver(records, timeout)), 0)]
        budget.used += count

        def finish(results: list[BaseException | None]) -> Answer:
            budget.used -= count
            if any(results):
                return failed(path, results)
            publish_seconds.observe(time.perf_counter() - started)
            auth.remember(authenticated, now)
            accepted.inc(count)
            if _debug.isEnabledFor(logging.DEBUG):  # the check, without structlog's proxy
                log.debug(
                    "webhook accepted", webhook=path, ids=ids, stories=[s.id for s in stories]
                )
            if media_type in NDJSON_TYPES:
                return 202, [], orjson.dumps({"ids": ids, "accepted": len(ids)})
            return 202, [], b'{"id":"' + ids[0].encode() + b'","accepted":true}'

        return Publishing(waits, finish)

    def failed(path: str, results: list[BaseException | None]) -> Answer:
        """503: not every event was made durable."""
        failures = [r for r in results if r is not None]
        durable = len(results) - len(failures)
        first = failures[0]
        partial = (
            f"; {durable} of {len(results)} events were written and will be processed"
            if durable
            else ""
        )
        if isinstance(first, TimeoutError):
            return reject(
                path,
                503,
                "kafka_timeout",
                f"Kafka did not acknowledge within {settings.publish_timeout_seconds}s" + partial,
                retry_after,
            )
        log.warning(
            "webhook publish failed", webhook=path, error=f"{type(first).__name__}: {first}"
        )
        return reject(
            path,
            503,
            "kafka_error",
            "the event could not be made durable" + partial,
            retry_after,
        )

    return WebhookEndpoint(prepare, take, limit)


RawHeaders = list[tuple[bytes, bytes]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""A webhook's status, the headers besides content-length and content-type (JSON, always),
and its JSON body."""
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


def _refusal(status: int, detail: str, headers: dict[str, str] | None) -> Answer:
    """A refusal as FastAPI's ``http_exception_handler`` renders an ``HTTPException``."""
    extra = (
        []
        if headers is None
        else [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    )
    return status, extra, _json({"detail": detail})


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request's body from its ASGI messages (as ``Request.stream`` reads them), up
    to the first message that takes it over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # read no further: ``take`` refuses it (413)
            chunks.append(chunk)
            return b"".join(chunks)
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
