"""A lean HTTP/1.1 client for the ``http`` action's usual requests (ADR 0330).

aiohttp's request path costs ~350 CPU µs per request on this project's machines (URL and
header objects, a request and a response object, payload registry, timers, traces): a
third of an ``http`` step. This client writes the request line and headers as one
buffer on a kept-alive connection and parses the answer with ``httptools`` (llhttp, the
parser uvicorn uses): content length, chunked and until-close bodies, 1xx answers,
gzip and deflate content coding (decoded within the size limit, as aiohttp does).

It takes only what it can send exactly as aiohttp would (:meth:`Http1Client.takes`):
plain ``http://`` URLs with a name or IPv4 host and no credentials, methods with a
response body, and header names and values of visible ASCII that leave the framing to it.
Everything else (HTTPS, HEAD, ...) goes to the aiohttp session it wraps, decided before
anything is sent, so no request is ever sent twice by the choice. Requests carry
aiohttp's automatic headers (``Host``, ``Accept``, ``Accept-Encoding``, ``User-Agent``,
``Content-Length``) and failures raise the httpx errors the aiohttp path raises for them.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from typing import Final, cast

import aiohttp
import httptools
import httpx
import yarl

__all__ = ["Http1Client", "Response"]

# What aiohttp adds to every request (ClientRequest.DEFAULT_HEADERS, SERVER_SOFTWARE).
_AUTOMATIC: Final = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("User-Agent", aiohttp.http.SERVER_SOFTWARE),
)
_AUTOMATIC_NAMES: Final = frozenset(name.lower() for name, _ in _AUTOMATIC)
# Headers that decide the framing or the connection: left to aiohttp when a step sets them.
_FRAMING: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"}
)
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_EMPTY_BODY_LENGTH: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # aiohttp sends 0
# aiohttp retries these once on a fresh connection when a kept-alive one was dead.
_IDEMPOTENT: Final = frozenset({"GET", "OPTIONS", "PUT", "DELETE"})
_VISIBLE: Final = re.compile(r"[\x20-\x7e]*")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

Response = tuple[int, dict[str, str], bytes, bool]
"""Status, headers (lower-case names, repeats joined with ``", "``), body, truncated."""


class _Dead(Exception):
    """The connection ended before any byte of an answer (a kept-alive one may be stale)."""


class _Exchange(asyncio.Protocol):
    """One connection; answers one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._expect(0)

    def _expect(self, max_bytes: int) -> None:
        """Ready to read one answer of at most ``max_bytes`` of body. The parser of the
        last answer reads the next (a kept-alive connection is used again only after a
        complete answer)."""
        self._received = self._headers_done = self._until_close = False
        self._complete = self._over = self._truncated = self._reusable = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._room = max_bytes
        self._decoder: zlib._Decompress | _Deflate | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but are transports
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._close()  # bytes nobody asked for: the connection is unusable
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if self._over:  # on_body stopped the parser at the size limit
                self._finish(truncated=True)
            else:  # a callback's own error is the context of the parser's
                reason = exc.__context__ or exc
                self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {reason}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if not self._received:
            self._fail(_Dead())
        elif self._headers_done and self._until_close:
            self._finish(truncated=False)  # a body delimited by the end of the connection
        elif self._headers_done:
            self._fail(httpx.ReadError("the server closed the connection within the body"))
        else:
            self._fail(httpx.ConnectTimeout("Server disconnected"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("utf-8", "surrogateescape")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self._status = status
        if status < 200:  # an interim answer (100, 103): the real one follows
            self._headers = {}
            return
        headers = self._headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        coding = headers.get("content-encoding", "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._decoder = _Deflate()
        elif coding not in ("", "identity"):
            raise httptools.HttpParserError(f"unsupported content coding {coding!r}")
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._status < 200:
            return
        if self._decoder is not None:
            body = self._decoder.decompress(body, self._room + 1)
        self._body.append(body)
        self._room -= len(body)
        if self._room < 0:
            self._over = True
            raise _Truncated

    def on_message_begin(self) -> None:
        if self._complete:  # bytes after the answer: the connection is out of step
            raise httptools.HttpParserError("data after the response")

    def on_message_complete(self) -> None:
        if self._status < 200:
            return  # the parser reads the next message, the final answer
        self._complete = True
        if self._decoder is not None:
            tail = self._decoder.flush()
            self._body.append(tail)
            self._room -= len(tail)
        self._finish(truncated=self._room < 0, reusable=self._parser.should_keep_alive())

    # -- the exchange
    async def exchange(self, request: bytes, max_bytes: int, deadline: float) -> Response:
        """Send ``request`` and read its answer; TimeoutError at ``deadline`` (loop time),
        with one timer rather than ``asyncio.timeout``'s cancellation machinery."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_at(deadline, self._time_out)
        self._expect(max_bytes)
        assert self.transport is not None
        try:
            self.transport.write(request)
            await waiter
        except BaseException:
            self._close()  # timed out, cancelled or failed: never reused
            raise
        finally:
            timer.cancel()
        raw = b"".join(self._body)
        if self._truncated:
            raw = raw[:max_bytes]
        return self._status, self._headers, raw, self._truncated

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed

    def _finish(self, *, truncated: bool, reusable: bool = False) -> None:
        self._truncated = truncated
        self._reusable = reusable and not truncated
        if not self._reusable:
            self._close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _time_out(self) -> None:
        self._fail(TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        self._close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Truncated(Exception):
    """The body reached the size limit."""


class _Deflate:
    """``Content-Encoding: deflate``, zlib-wrapped or raw (servers send both; aiohttp
    reads both)."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            wrapped = bool(data) and data[0] & 0x0F == 8
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


class Http1Client:
    """Kept-alive HTTP/1.1 connections per host, and the aiohttp session for the rest.

    Args:
        fallback: the aiohttp session (``main.build_session``) for requests this client
            does not take.
        keepalive_seconds: an idle connection is not reused after this long (httpx's
            and the session's keep-alive expiry).
        max_idle_per_host: idle connections kept per host.
    """

    def __init__(
        self,
        fallback: aiohttp.ClientSession,
        *,
        keepalive_seconds: float = 5.0,
        max_idle_per_host: int = 100,
    ) -> None:
        self.fallback = fallback
        self._keepalive = keepalive_seconds
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], list[_Exchange]] = {}

    def takes(self, method: str, url: yarl.URL, headers: dict[str, str]) -> bool:
        """Whether this client sends the request (else the aiohttp session does)."""
        if method not in _METHODS or url.scheme != "http" or url.raw_user is not None:
            return False
        host = url.raw_host
        if not host or ":" in host or url.raw_password is not None:
            return False
        for name, value in headers.items():
            if (
                _TOKEN.fullmatch(name) is None
                or _VISIBLE.fullmatch(value) is None
                or name.lower() in _FRAMING
            ):
                return False
        return True

    async def request(
        self,
        method: str,
        url: yarl.URL,
        headers: dict[str, str],
        body: bytes | None,
        max_bytes: int,
        timeout_seconds: float,
    ) -> Response:
        """Send a request :meth:`takes` accepted and read the answer, within
        ``timeout_seconds`` (else TimeoutError), connecting included.

        Raises:
            httpx.ConnectTimeout: the connection could not be made, or the server closed
                it before answering (the type httpx-aiohttp maps aiohttp's
                ``ClientConnectorError`` and ``ServerDisconnectedError`` to).
            httpx.ReadError: the connection ended within the body.
            httpx.RemoteProtocolError: the answer is not HTTP/1.1 this client reads.
        """
        host, port = url.raw_host or "", url.port or 80
        message = _request_bytes(method, url, host, port, headers, body)
        key = (host, port)
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        connection, reused = self._idle_connection(key), True
        if connection is None:
            connection, reused = await self._connect(host, port, deadline), False
        try:
            answer = await connection.exchange(message, max_bytes, deadline)
        except _Dead:
            if not reused or method not in _IDEMPOTENT:
                raise httpx.ConnectTimeout("Server disconnected") from None
            connection = await self._connect(host, port, deadline)
            try:
                answer = await connection.exchange(message, max_bytes, deadline)
            except _Dead:
                raise httpx.ConnectTimeout("Server disconnected") from None
        if connection.reusable:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_idle:
                connection.idle_since = time.monotonic()
                idle.append(connection)
            else:
                connection._close()
        return answer

    def _idle_connection(self, key: tuple[str, int]) -> _Exchange | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_usable = time.monotonic() - self._keepalive
        while idle:
            connection = idle.pop()
            usable = not connection.closed and connection.idle_since >= oldest_usable
            if (
                usable
                and connection.transport is not None
                and not connection.transport.is_closing()
            ):
                return connection
            connection._close()
        return None

    async def _connect(self, host: str, port: int, deadline: float) -> _Exchange:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(_Exchange, host, port)
        except OSError as exc:
            # The type the aiohttp path reports for it: httpx-aiohttp's table maps
            # ClientConnectorError to its base class's ConnectTimeout.
            raise httpx.ConnectTimeout(
                f"Cannot connect to host {host}:{port} ssl:default [{exc.strerror or exc}]"
            ) from exc
        return connection

    async def close(self) -> None:
        """Close idle connections, then the aiohttp session."""
        for idle in self._idle.values():
            for connection in idle:
                connection._close()
        self._idle.clear()
        await self.fallback.close()


def _request_bytes(
    method: str, url: yarl.URL, host: str, port: int, headers: dict[str, str], body: bytes | None
) -> bytes:
    """The request line and headers as aiohttp writes them, then the body."""
    target = url.raw_path_qs or "/"
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}" if port == 80 else f"Host: {host}:{port}",
    ]
    given = set()
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
        given.add(name.lower())
    if not given.isdisjoint(_AUTOMATIC_NAMES):
        lines.extend(f"{n}: {v}" for n, v in _AUTOMATIC if n.lower() not in given)
    else:
        lines.extend(f"{n}: {v}" for n, v in _AUTOMATIC)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in _EMPTY_BODY_LENGTH:
        lines.append("Content-Length: 0")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + body if body else head
