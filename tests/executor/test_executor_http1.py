"""The lean HTTP/1.1 client sends what aiohttp sends and reads what aiohttp reads.

A scripted server on a local socket answers each request with the bytes a test gives
(framings aiohttp's own server would not write: chunks, content codings, bodies ended by
closing, interim answers, broken answers) and keeps every request and connection. Each
case runs over the lean client and over the aiohttp session directly; the replies, and
the errors' types, must be the same.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import uvloop
import yarl

from baton_executor.actions.http1 import Http1Client
from baton_executor.actions.outbound import Reply, send_direct
from baton_executor.errors import RetryableError
from baton_executor.main import build_session
from baton_executor.settings import ExecutorSettings

Script = Callable[[int], bytes]
"""The answer's bytes for the n-th request (from 0) of a connection."""


@dataclass
class Scripted:
    port: int
    answer: Script
    close_after: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    @property
    def url(self) -> yarl.URL:
        return yarl.URL(f"http://127.0.0.1:{self.port}/path?q=1")


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    scripted = Scripted(0, lambda n: b"")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        scripted.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                scripted.requests.append(head + await reader.readexactly(length))
                writer.write(scripted.answer(n))
                await writer.drain()
                n += 1
                if scripted.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    scripted.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield scripted


@pytest.fixture
async def clients() -> AsyncIterator[tuple[Http1Client, Http1Client]]:
    """The lean client, and the same object type whose every request goes to aiohttp."""
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"])
    lean, plain = Http1Client(build_session(settings)), Http1Client(build_session(settings))
    plain.takes = lambda *_: False  # type: ignore[method-assign]
    try:
        yield lean, plain
    finally:
        await lean.close()
        await plain.close()


async def send(
    client: Http1Client, server: Scripted, method: str = "GET", body: bytes | None = None
) -> Reply | str:
    try:
        return await send_direct(
            client,
            None,
            method,
            server.url,
            headers={"Idempotency-Key": "k-1", "Content-Type": "application/json"},
            body=body,
            timeout_seconds=5,
            max_bytes=64,
        )
    except RetryableError as exc:
        return exc.error_type


def answer(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


BIG = b"x" * 500
CASES: dict[str, bytes] = {
    "content-length": answer("HTTP/1.1 200 OK", "Content-Length: 7", body=b'{"a":1}'),
    "json": answer(
        "HTTP/1.1 200 OK", "Content-Type: application/json", "Content-Length: 7", body=b'{"a":1}'
    ),
    "chunked": answer("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=chunked(b"ab", b"cd")),
    "gzip": answer(
        "HTTP/1.1 200 OK",
        "Content-Encoding: gzip",
        f"Content-Length: {len(gzip.compress(b'zipped'))}",
        body=gzip.compress(b"zipped"),
    ),
    "deflate": answer(
        "HTTP/1.1 200 OK",
        "Content-Encoding: deflate",
        f"Content-Length: {len(zlib.compress(b'deflated'))}",
        body=zlib.compress(b"deflated"),
    ),
    "gzip beyond the limit": answer(
        "HTTP/1.1 200 OK",
        "Content-Encoding: gzip",
        "Transfer-Encoding: chunked",
        body=chunked(gzip.compress(BIG)),
    ),
    "beyond the limit": answer("HTTP/1.1 200 OK", f"Content-Length: {len(BIG)}", body=BIG),
    "repeated headers": answer(
        "HTTP/1.1 201 Created", "X-A: 1", "x-a: 2", "Set-Cookie: s=1", "Content-Length: 0"
    ),
    "interim answer": answer("HTTP/1.1 100 Continue")
    + answer("HTTP/1.1 200 OK", "Content-Length: 2", body=b"ok"),
    "no content": answer("HTTP/1.1 204 No Content"),
    "retryable status": answer(
        "HTTP/1.1 503 Busy", "Retry-After: 7", "Content-Length: 4", body=b"busy"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_answers_read_as_aiohttp_reads_them(
    case: str, server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    server.answer = lambda n: CASES[case]
    lean, plain = clients
    assert await send(lean, server) == await send(plain, server)


async def test_a_body_ended_by_closing_reads_as_aiohttp_reads_it(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    server.answer = lambda n: answer("HTTP/1.1 200 OK", "Connection: close", body=b"until the end")
    server.close_after = True
    lean, plain = clients
    got = await send(lean, server)
    assert isinstance(got, Reply)
    assert got.raw == b"until the end"
    assert got == await send(plain, server)


async def test_requests_carry_what_aiohttp_sends(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    server.answer = lambda n: answer("HTTP/1.1 200 OK", "Content-Length: 0")
    for client in clients:
        await send(client, server, "POST", b'{"a":"\xc3\xa9"}')
        await send(client, server, "GET")
        await send(client, server, "DELETE")

    def parts(request: bytes) -> tuple[bytes, set[bytes], bytes]:
        head, _, body = request.partition(b"\r\n\r\n")
        line, *headers = head.split(b"\r\n")
        return line, {h.lower() for h in headers}, body

    lean, plain = server.requests[:3], server.requests[3:]
    assert [parts(r) for r in lean] == [parts(r) for r in plain]
    assert b"content-length: 0" in parts(lean[2])[1]  # DELETE without a body, as aiohttp


async def test_connections_are_kept_alive_and_closed_when_the_server_says_so(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    lean, _ = clients
    server.answer = lambda n: answer("HTTP/1.1 200 OK", "Content-Length: 2", body=b"ok")
    for _ in range(3):
        await send(lean, server)
    assert server.connections == 1

    server.answer = lambda n: answer("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 0")
    await send(lean, server)  # on the kept connection, which then closes
    assert server.connections == 1
    await send(lean, server)
    assert server.connections == 2


async def test_a_truncated_answer_does_not_leave_its_rest_for_the_next_request(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    lean, _ = clients
    server.answer = lambda n: (
        CASES["beyond the limit"]
        if len(server.requests) == 1
        else answer("HTTP/1.1 200 OK", "Content-Length: 0")
    )
    first, second = await send(lean, server), await send(lean, server)
    assert isinstance(first, Reply)
    assert isinstance(second, Reply)
    assert first.truncated
    assert (second.raw, second.truncated) == (b"", False)
    assert server.connections == 2


async def test_a_stale_connection_is_retried_only_where_aiohttp_retries(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    # The server answers a connection's first request and drops it at the second.
    server.answer = _first_answered_then_dropped()
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"])
    results: dict[str, list[object]] = {"lean": [], "aiohttp": []}
    for method in ("GET", "POST"):
        for name in results:
            client = Http1Client(build_session(settings))
            if name == "aiohttp":
                client.takes = lambda *_: False  # type: ignore[method-assign]
            try:
                await send(client, server, method)  # opens a connection, left idle
                outcome = await send(client, server, method)
            finally:
                await client.close()
            results[name].append(outcome if isinstance(outcome, str) else outcome.status)
    # GET is sent again on a new connection; POST is not (the step's retry policy decides)
    assert results["lean"] == results["aiohttp"] == [200, "ConnectTimeout"]


def _first_answered_then_dropped() -> Script:
    def script(n: int) -> bytes:
        if n == 0:
            return answer("HTTP/1.1 200 OK", "Content-Length: 0")
        raise ConnectionResetError  # the connection ends without an answer

    return script


@pytest.mark.parametrize(
    "broken",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"HTTP/1.1 200 OK\r\n"],
)
async def test_answers_cut_short_fail_as_in_aiohttp(
    broken: bytes, server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    server.answer = lambda n: broken
    server.close_after = True
    lean, plain = clients
    assert await send(lean, server) == await send(plain, server)


async def test_refused_connections_fail_as_in_aiohttp(
    clients: tuple[Http1Client, Http1Client],
) -> None:
    closed = Scripted(1, lambda n: b"")  # nothing listens on port 1
    lean, plain = clients
    assert await send(lean, closed) == await send(plain, closed) == "ConnectTimeout"


async def test_a_timed_out_exchange_never_reuses_its_connection(
    server: Scripted, clients: tuple[Http1Client, Http1Client]
) -> None:
    lean, _ = clients
    server.answer = lambda n: b""  # never answers
    with pytest.raises(TimeoutError):
        await lean.request("GET", server.url, {}, None, 64, 0.2)
    server.answer = lambda n: answer("HTTP/1.1 200 OK", "Content-Length: 0")
    assert (await lean.request("GET", server.url, {}, None, 64, 5))[0] == 200
    assert server.connections == 2


def test_what_the_lean_client_leaves_to_aiohttp() -> None:
    lean = Http1Client.__new__(Http1Client)
    url = yarl.URL("http://api.example/x")
    assert lean.takes("POST", url, {"Authorization": "Bearer t"})
    assert not lean.takes("GET", yarl.URL("https://api.example/x"), {})
    assert not lean.takes("HEAD", url, {})
    assert not lean.takes("GET", yarl.URL("http://u:p@api.example/x"), {})
    assert not lean.takes("GET", yarl.URL("http://[::1]/x"), {})
    assert not lean.takes("GET", url, {"X-A": "a\r\nInjected: 1"})
    assert not lean.takes("GET", url, {"X-A": "é"})
    assert not lean.takes("GET", url, {"Transfer-Encoding": "chunked"})
    assert not lean.takes("GET", url, {"Bad Name": "x"})


def test_it_runs_on_uvloop_as_the_executor_does() -> None:
    """uvicorn runs the executor on uvloop, whose transports are not asyncio's classes."""

    async def exchange_twice() -> tuple[int, int]:
        served: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(1)
            for _ in range(2):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer("HTTP/1.1 200 OK", "Content-Length: 2", body=b"ok"))
            writer.close()

        listening = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = yarl.URL(f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/")
        lean = Http1Client(build_session(ExecutorSettings()))
        try:
            statuses = [(await lean.request("GET", url, {}, None, 64, 5))[0] for _ in range(2)]
        finally:
            await lean.close()
            listening.close()
        assert statuses == [200, 200]
        return len(served), len(statuses)

    assert uvloop.run(exchange_twice()) == (1, 2)
