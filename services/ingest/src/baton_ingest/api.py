"""The webhook endpoint: check, make durable in Kafka, then answer 202.

``POST /webhooks/{path}`` answers 202 only once the event is acknowledged by Kafka
(``acks=all``), so an accepted webhook is never lost. Every refusal is JSON
``{"detail": reason}`` with a status a sender can act on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn
from uuid import uuid4

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import JsonValue
from starlette.datastructures import Headers

from baton_common.catalog import StoryCatalog
from baton_common.kafka import outbound, to_envelope
from baton_common.records import EventReceived
from baton_common.story import Story
from baton_common.triggers import Signature
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.secrets import SecretResolver
from baton_ingest.settings import IngestSettings
from baton_ingest.signature import SignatureCheck, verify_signature

__all__ = ["webhook_router"]

log = structlog.get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def webhook_router(
    *,
    settings: IngestSettings,
    catalog: StoryCatalog,
    catalog_ready: asyncio.Event,
    publisher: Publisher,
    secrets: SecretResolver,
    metrics: IngestMetrics,
    clock: Callable[[], datetime] = _utcnow,
) -> APIRouter:
    """The ``/webhooks`` routes, over the given catalog and publisher."""
    router = APIRouter(tags=["webhooks"])
    in_flight = asyncio.Semaphore(settings.max_in_flight)
    retry_after = {"Retry-After": str(settings.retry_after_seconds)}

    def reject(
        status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> NoReturn:
        metrics.rejected.labels(reason=reason).inc()
        log.info("webhook rejected", status=status, reason=reason, detail=detail)
        raise HTTPException(status_code=status, detail=detail, headers=headers)

    @router.post("/webhooks/{path}", status_code=202)
    async def receive_webhook(path: str, request: Request) -> JSONResponse:
        """Accept an event for the stories listening on ``path``."""
        structlog.contextvars.bind_contextvars(webhook=path)
        try:
            return await _receive(path, request)
        finally:
            structlog.contextvars.unbind_contextvars("webhook")

    async def _receive(path: str, request: Request) -> JSONResponse:
        if not catalog_ready.is_set():
            reject(503, "not_ready", "the story catalog is still loading", retry_after)
        stories = catalog.for_webhook(path)
        if not stories:
            reject(404, "not_found", f"no active story listens on webhook path {path!r}")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            reject(
                415,
                "unsupported_media_type",
                f"content-type must be application/json, got {media_type or 'none'!r}",
            )
        body = await _read_body(request, settings.max_body_bytes, reject)
        for signature in _signatures(stories):
            _check_signature(signature, request.headers, body, secrets, reject)
        payload = _parse_object(body, reject)

        if in_flight.locked():
            reject(429, "overloaded", "too many webhooks awaiting Kafka; retry later", retry_after)
        async with in_flight:
            event_id = str(uuid4())
            envelope = to_envelope(
                EventReceived(path=path, body=payload),
                id=event_id,
                source=f"baton/ingest/webhook/{path}",
                time=clock(),
                correlationid=event_id,
            )
            record = outbound(settings.topics.ingest, path, envelope)
            started = time.perf_counter()
            try:
                await asyncio.wait_for(
                    publisher.publish(record), timeout=settings.publish_timeout_seconds
                )
            except TimeoutError:
                reject(
                    503,
                    "kafka_timeout",
                    f"Kafka did not acknowledge within {settings.publish_timeout_seconds}s",
                    retry_after,
                )
            except Exception as exc:
                log.warning("webhook publish failed", error=f"{type(exc).__name__}: {exc}")
                reject(503, "kafka_error", "the event could not be made durable", retry_after)
            metrics.publish_seconds.observe(time.perf_counter() - started)
        metrics.accepted.inc()
        log.info("webhook accepted", id=event_id, stories=[s.id for s in stories])
        return JSONResponse({"id": event_id, "accepted": True}, status_code=202)

    return router


Reject = Callable[..., NoReturn]


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


def _signatures(stories: list[Story]) -> list[Signature]:
    """The distinct signature checks of the stories on a path; a request must pass all.

    Accepting a request signed for only one of them would let a sender holding one
    story's key trigger another story that asked for a different key.
    """
    distinct: dict[tuple[str, str, str], Signature] = {}
    for story in stories:
        signature = story.trigger.webhook.signature
        if signature is not None:
            distinct.setdefault((signature.secret, signature.header, signature.prefix), signature)
    return list(distinct.values())


def _check_signature(
    signature: Signature, headers: Headers, body: bytes, secrets: SecretResolver, reject: Reject
) -> None:
    key = secrets(signature.secret)
    if key is None:
        log.error(
            "webhook signing secret is not configured",
            secret=signature.secret,
            hint="set the secret's BATON_SECRET_<NAME> environment variable",
        )
        reject(500, "secret_missing", "the webhook's signing secret is not configured")
    outcome = verify_signature(
        body, headers.get(signature.header), key=key.encode(), prefix=signature.prefix
    )
    if outcome is SignatureCheck.MISSING:
        reject(401, "signature_missing", f"missing signature header {signature.header}")
    if outcome is SignatureCheck.WRONG_PREFIX:
        reject(
            401,
            "signature_invalid",
            f"signature header {signature.header} must start with {signature.prefix!r}",
        )
    if outcome is SignatureCheck.MISMATCH:
        reject(401, "signature_invalid", f"signature in {signature.header} does not match")


_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _parse_object(body: bytes, reject: Reject) -> dict[str, JsonValue]:
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        reject(422, "invalid_json", f"body is not valid JSON: {exc}")
    if not isinstance(document, dict):
        kind = _JSON_KINDS.get(type(document), type(document).__name__)
        reject(422, "invalid_json", f"body must be a JSON object, got {kind}")
    parsed: dict[str, JsonValue] = document
    return parsed
