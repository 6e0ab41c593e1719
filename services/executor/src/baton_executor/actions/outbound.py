"""Sending one guarded HTTP request and turning what comes back into data or an error.

Shared by every action that talks HTTP (``http``, the AI providers, Slack), so they all
pass the SSRF policy, the per-host limits and the circuit breaker, and classify
failures the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, NoReturn

import httpx
from pydantic import JsonValue

from baton_common.telemetry import SpanKind, span
from baton_executor.errors import ActionError, PermanentError, RetryableError
from baton_executor.guard import OutboundGuard

__all__ = [
    "DEFAULT_RETRYABLE",
    "Reply",
    "decode_body",
    "retry_after",
    "safe_url",
    "send",
    "status_error",
]

DEFAULT_RETRYABLE: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses a retry may cure, unless a step lists its own ``retry_on_status``."""
_ERROR_BODY_CHARS: Final = 300
_MAX_RETRY_AFTER: Final = 24 * 3600.0


@dataclass(frozen=True)
class Reply:
    """A response read up to the size limit."""

    response: httpx.Response
    raw: bytes
    truncated: bool

    @property
    def status(self) -> int:
        return self.response.status_code

    def body(self) -> JsonValue:
        return decode_body(self.response, self.raw, self.truncated)


async def send(
    client: httpx.AsyncClient,
    guard: OutboundGuard | None,
    request: httpx.Request,
    *,
    timeout_seconds: float,
    max_bytes: int,
    retryable: Collection[int] = DEFAULT_RETRYABLE,
) -> Reply:
    """Send ``request`` through ``guard`` and read at most ``max_bytes`` of the answer.

    Statuses in ``retryable`` raise ``RetryableError`` inside the guard, so they count
    against the host's circuit; every other status is returned for the caller to judge.

    Raises:
        RetryableError: timeouts, connection errors, retryable statuses, open circuits.
        PermanentError: requests that cannot be sent, or the SSRF policy refused.
    """
    # only method, host and port: a path or query may hold a resolved secret
    with span(
        f"HTTP {request.method}",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": request.method,
            "server.address": request.url.host,
            "server.port": request.url.port,
        },
    ) as current:
        reply = await _send(client, guard, request, timeout_seconds, max_bytes, retryable)
        if current is not None:
            current.set_attribute("http.response.status_code", reply.status)
        return reply


async def _send(
    client: httpx.AsyncClient,
    guard: OutboundGuard | None,
    request: httpx.Request,
    timeout_seconds: float,
    max_bytes: int,
    retryable: Collection[int],
) -> Reply:
    guarded = guard.request(request.url) if guard is not None else _unguarded()
    async with guarded:
        try:
            async with asyncio.timeout(timeout_seconds):
                response = await client.send(request, stream=True)
                try:
                    raw, truncated = await _read_limited(response, max_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise RetryableError(
                f"{_what(request)}: no complete response within {timeout_seconds}s",
                error_type="Timeout",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            _raise_transport_error(exc, _what(request))
        reply = Reply(response, raw, truncated)
        if reply.status in retryable:
            raise status_error(reply, _what(request), retryable=True)
    return reply


def _what(request: httpx.Request) -> str:
    """The request for error messages. Built only when one is needed: ``safe_url``
    parses the URL again, which is a fair share of a fast request's cost."""
    return f"{request.method} {safe_url(request.url)}"


class _Unguarded:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _unguarded() -> _Unguarded:
    return _Unguarded()


def status_error(reply: Reply, what: str, *, retryable: bool) -> ActionError:
    """The error for an unsuccessful status, with the body's start and ``Retry-After``."""
    body = reply.body()
    snippet = body if isinstance(body, str) else json.dumps(body)
    message = f"{what} returned HTTP {reply.status}"
    if snippet:
        message += f": {snippet[:_ERROR_BODY_CHARS]}"
    cls = RetryableError if retryable else PermanentError
    return cls(
        message,
        error_type=f"http_{reply.status}",
        http_status=reply.status,
        retry_after_seconds=retry_after(reply.response) if retryable else None,
    )


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or an HTTP date), capped at a day."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _raise_transport_error(exc: httpx.HTTPError | httpx.InvalidURL, what: str) -> NoReturn:
    message = f"{what}: {type(exc).__name__}"
    if str(exc):
        message += f": {exc}"
    # Requests that can never be sent: a retry would fail the same way.
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        raise PermanentError(message, error_type=type(exc).__name__) from exc
    # Timeouts, refused or reset connections, protocol errors from the server.
    raise RetryableError(message, error_type=type(exc).__name__) from exc


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(response: httpx.Response, raw: bytes, truncated: bool) -> JsonValue:
    """JSON if the response says so and parses, else text."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not truncated and (media_type == "application/json" or media_type.endswith("+json")):
        try:
            parsed: JsonValue = json.loads(raw, parse_constant=_no_constants)
            return parsed
        except (ValueError, RecursionError):
            pass  # a server that labels text as JSON: keep the text
    return raw.decode(response.charset_encoding or "utf-8", errors="replace")


def safe_url(url: str | httpx.URL) -> str:
    """The URL without credentials or query, which may carry tokens, for messages."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))
