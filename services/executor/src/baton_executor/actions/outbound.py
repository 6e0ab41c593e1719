"""Sending one guarded HTTP request and turning what comes back into data or an error.

Shared by every action that talks HTTP (``http``, the AI providers, Slack), so they all
pass the SSRF policy, the per-host limits and the circuit breaker, and classify
failures the same way.
"""

from __future__ import annotations

import asyncio
import email.message
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, NoReturn, Protocol

import aiohttp
import httpx
import orjson
import yarl
from httpx_aiohttp.transport import map_aiohttp_exceptions
from pydantic import JsonValue

from baton_common.telemetry import SpanKind, span
from baton_executor.actions.http1 import Http1Client
from baton_executor.errors import ActionError, PermanentError, RetryableError
from baton_executor.guard import OutboundGuard

__all__ = [
    "DEFAULT_RETRYABLE",
    "Reply",
    "decode_body",
    "retry_after",
    "safe_url",
    "send",
    "send_direct",
    "status_error",
]

DEFAULT_RETRYABLE: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses a retry may cure, unless a step lists its own ``retry_on_status``."""
_ERROR_BODY_CHARS: Final = 300
_MAX_RETRY_AFTER: Final = 24 * 3600.0


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Reply:
    """A response read up to the size limit.

    ``headers`` answers lower-case names (``httpx.Headers``, or the lower-cased dict of
    :func:`send_direct`, repeated headers joined with ``", "`` as httpx joins them).
    """

    status: int
    headers: Mapping[str, str]
    raw: bytes
    truncated: bool

    def body(self) -> JsonValue:
        return decode_body(self.headers, self.raw, self.truncated)


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

    async def exchange() -> Reply:
        response = await client.send(request, stream=True)
        try:
            raw, truncated = await _read_limited(response.aiter_bytes(), max_bytes)
        finally:
            await response.aclose()
        return Reply(response.status_code, response.headers, raw, truncated)

    return await _guarded(guard, request.method, request.url, exchange, timeout_seconds, retryable)


async def send_direct(
    session: aiohttp.ClientSession | Http1Client,
    guard: OutboundGuard | None,
    method: str,
    url: yarl.URL,
    *,
    headers: dict[str, str],
    body: bytes | None,
    timeout_seconds: float,
    max_bytes: int,
    retryable: Collection[int] = DEFAULT_RETRYABLE,
) -> Reply:
    """:func:`send` straight over an aiohttp session, without httpx's layer (ADR 0320),
    or over the lean HTTP/1.1 client for the requests it takes (ADR 0330).

    Same guard, limits, classification and error types (aiohttp's errors are mapped to
    httpx's exactly as the ``httpx-aiohttp`` transport maps them). Redirects are never
    followed; no Content-Type is added that ``headers`` does not carry.
    """

    if isinstance(session, Http1Client):
        if session.takes(method, url, headers):
            lean = session

            async def exchange_lean() -> Reply:
                answer = await lean.request(method, url, headers, body, max_bytes, timeout_seconds)
                return Reply(*answer)

            return await _guarded(
                guard, method, url, exchange_lean, timeout_seconds, retryable, timed=True
            )
        session = session.fallback

    async def exchange() -> Reply:
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=_SKIP_CONTENT_TYPE,
            ) as response:
                length = response.content_length
                if length is not None and length <= max_bytes and _identity(response):
                    # The whole body, of a size known to fit: no chunk loop.
                    raw, truncated = await response.read(), False
                else:
                    raw, truncated = await _read_limited(response.content.iter_any(), max_bytes)
                joined: dict[str, str] = {}
                for name, value in response.headers.items():
                    key = name.lower()
                    joined[key] = f"{joined[key]}, {value}" if key in joined else value
                return Reply(response.status, joined, raw, truncated)
        except Exception:
            # Entered only on an error: a generator-based context manager on every
            # request costs more than the mapping it does.
            with map_aiohttp_exceptions():
                raise

    return await _guarded(guard, method, url, exchange, timeout_seconds, retryable)


def _identity(response: aiohttp.ClientResponse) -> bool:
    """No content coding: the body read is as long as ``Content-Length`` says (a
    decompressed body may be far longer)."""
    coding = response.headers.get("Content-Encoding")
    return coding is None or coding.strip().lower() == "identity"


_SKIP_CONTENT_TYPE: Final = frozenset({"Content-Type"})


async def _guarded(
    guard: OutboundGuard | None,
    method: str,
    url: httpx.URL | yarl.URL,
    exchange: Callable[[], Awaitable[Reply]],
    timeout_seconds: float,
    retryable: Collection[int],
    *,
    timed: bool = False,
) -> Reply:
    """``exchange`` through the guard, within ``timeout_seconds`` (``timed``: it keeps
    that time itself, raising TimeoutError)."""
    # only method, host and port: a path or query may hold a resolved secret
    with span(
        f"HTTP {method}",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": method,
            "server.address": url.host,
            "server.port": url.port,
        },
    ) as current:
        async with guard.request(url) if guard is not None else _unguarded():
            try:
                if timed:
                    reply = await exchange()
                else:
                    async with asyncio.timeout(timeout_seconds):
                        reply = await exchange()
            except TimeoutError:
                raise RetryableError(
                    f"{_what(method, url)}: no complete response within {timeout_seconds}s",
                    error_type="Timeout",
                ) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                _raise_transport_error(exc, _what(method, url))
            if reply.status in retryable:
                raise status_error(reply, _what(method, url), retryable=True)
        if current is not None:
            current.set_attribute("http.response.status_code", reply.status)
        return reply


def _what(method: str, url: httpx.URL | yarl.URL) -> str:
    """The request for error messages. Built only when one is needed: ``safe_url``
    parses the URL again, which is a fair share of a fast request's cost."""
    return f"{method} {safe_url(url)}"


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
        retry_after_seconds=retry_after(reply) if retryable else None,
    )


def retry_after(response: _HasHeaders, now: datetime | None = None) -> float | None:
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


async def _read_limited(stream: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(headers: Mapping[str, str], raw: bytes, truncated: bool) -> JsonValue:
    """JSON if the response says so and parses, else text (in the declared charset)."""
    content_type = headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if not truncated and (media_type == "application/json" or media_type.endswith("+json")):
        try:
            # orjson parses what json.loads parses to the same values, else refuses: then
            # json.loads decides (other encodings, huge integers; NaN stays refused).
            parsed: JsonValue = orjson.loads(raw)
            return parsed
        except orjson.JSONDecodeError:
            pass
        try:
            parsed = json.loads(raw, parse_constant=_no_constants)
            return parsed
        except (ValueError, RecursionError):
            pass  # a server that labels text as JSON: keep the text
    return raw.decode(_charset(content_type) or "utf-8", errors="replace")


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter, parsed as ``httpx.Response.charset_encoding`` does."""
    if "charset" not in content_type.lower():
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_charset(failobj=None)


def safe_url(url: str | httpx.URL | yarl.URL) -> str:
    """The URL without credentials or query, which may carry tokens, for messages."""
    if isinstance(url, yarl.URL):
        return str(url.with_user(None).with_query(None).with_fragment(None))
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))
