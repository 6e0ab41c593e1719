"""``CorkedHttpTools`` answers webhooks from the parser's callbacks (ADR 0263).

A real uvicorn server on a free port, raw sockets as the senders, and a publisher whose
acknowledgements the test gives in any order. ``Counting`` counts the requests that
reach ASGI at all: a webhook on the protocol's path never does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from platform_kit import free_port
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from baton_common.envelope import decode_record
from baton_common.kafka import OutboundRecord
from baton_common.testing import eventually
from baton_ingest.api import WebhookFastPath, webhook_endpoint, webhook_routes
from baton_ingest.corked import CorkedHttpTools
from baton_ingest.metrics import IngestMetrics
from baton_ingest.secrets import EnvironmentSecrets
from baton_ingest.settings import IngestSettings
from baton_ingest.signature import sign

from .stories import OPEN, TRIAGE, catalog_of, story

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "edr-key-material"


@dataclass
class HeldPublisher:
    """Hands records over at once (``hand``, as ``KafkaPublisher``) and acknowledges
    each call when the test says so."""

    calls: list[tuple[list[OutboundRecord], asyncio.Future[None]]] = field(default_factory=list)
    auto: bool = False

    def hand(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[tuple[asyncio.Future[None], int]] | None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.auto:
            future.set_result(None)
        self.calls.append((list(records), future))
        return [(future, len(records))]

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        waits = self.hand(records, within)
        assert waits is not None
        await waits[0][0]
        return [None] * len(records)

    async def publish(self, record: OutboundRecord) -> None:
        raise NotImplementedError

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        raise NotImplementedError

    async def send_many(self, records: list[OutboundRecord]) -> asyncio.Future[None]:
        raise NotImplementedError

    def ack(self, call: int) -> None:
        self.calls[call][1].set_result(None)

    def ids(self) -> list[str]:
        return [decode_record(r.value, r.headers).id for records, _ in self.calls for r in records]

    def bodies(self) -> list[object]:
        return [json.loads(r.value)["body"] for records, _ in self.calls for r in records]


class Counting(WebhookFastPath):
    """``WebhookFastPath`` counting the requests that reach ASGI."""

    asgi = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Counting.asgi += 1
        await super().__call__(scope, receive, send)


@dataclass
class Server:
    port: int
    publisher: HeldPublisher

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@asynccontextmanager
async def serving(*, fast: bool = True, auto: bool = False) -> AsyncIterator[Server]:
    """A server over ``HeldPublisher``; ``fast=False``: the same app without the
    protocol's path (uvicorn's own protocol), for comparison."""
    publisher = HeldPublisher(auto=auto)
    ready = asyncio.Event()
    ready.set()
    endpoint = webhook_endpoint(
        settings=IngestSettings(),
        catalog=catalog_of(story(OPEN), story(TRIAGE)),
        catalog_ready=ready,
        publisher=publisher,
        secrets=EnvironmentSecrets({"BATON_SECRET_EDR_WEBHOOK_SECRET": SECRET}),
        metrics=IngestMetrics(CollectorRegistry()),
        clock=lambda: NOW,
    )
    inner = FastAPI()
    inner.include_router(webhook_routes(endpoint))
    app = Counting(inner, endpoint)
    Counting.asgi = 0
    port = free_port()
    config = uvicorn.Config(
        app if fast else inner,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,  # as main runs it: the app is then served unwrapped
        http=CorkedHttpTools if fast else "httptools",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(_started(server), within=10, what="the server started")
        yield Server(port, publisher)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _started(server: uvicorn.Server) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return server.started

    return probe


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_answer(reader: asyncio.StreamReader, within: float = 5.0) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        key, _, value = line.partition(": ")
        headers[key.lower()] = value
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), within)
    return Answer(int(status_line.split()[1]), headers, body, head + body)


def webhook(body: bytes, path: str = "open", *extra: str) -> bytes:
    lines = [
        f"POST /webhooks/{path} HTTP/1.1",
        "host: ingest",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def event(n: int) -> bytes:
    return json.dumps({"alert_id": f"a-{n}"}).encode()


async def nothing_more(reader: asyncio.StreamReader) -> bool:
    """Whether the connection stays silent for a moment."""
    try:
        await asyncio.wait_for(reader.read(1), 0.2)
    except TimeoutError:
        return True
    return False


async def test_several_webhooks_one_after_another_on_one_kept_alive_connection() -> None:
    async with serving(auto=True) as server:
        reader, writer = await server.connect()
        answers = []
        for n in range(3):
            writer.write(webhook(event(n)))
            answers.append(await read_answer(reader))
        writer.close()

    assert [a.status for a in answers] == [202, 202, 202]
    assert all("connection" not in a.headers for a in answers)
    assert server.publisher.bodies() == [{"alert_id": f"a-{n}"} for n in range(3)]
    ids = [a.json()["id"] for a in answers]
    assert ids == server.publisher.ids()
    assert Counting.asgi == 0  # the protocol answered them all


async def test_pipelined_webhooks_are_answered_in_order_whatever_order_kafka_acks() -> None:
    async with serving() as server:
        reader, writer = await server.connect()
        writer.write(b"".join(webhook(event(n)) for n in range(3)))
        await eventually(_calls(server, 3), within=5, what="three webhooks handed over")
        server.publisher.ack(2)
        server.publisher.ack(1)
        silent = await nothing_more(reader)  # the first is not acknowledged yet
        server.publisher.ack(0)
        answers = [await read_answer(reader) for _ in range(3)]
        writer.close()

    assert silent
    assert [a.status for a in answers] == [202, 202, 202]
    assert [a.json()["id"] for a in answers] == server.publisher.ids()
    assert Counting.asgi == 0


async def test_a_large_body_in_many_segments_is_read_whole() -> None:
    payload = {"alert_id": "big", "blob": "x" * 300_000}
    body = json.dumps(payload).encode()
    async with serving(auto=True) as server:
        reader, writer = await server.connect()
        request = webhook(body)
        for start in range(0, len(request), 1400):
            writer.write(request[start : start + 1400])
            await writer.drain()
            if start % (1400 * 20) == 0:
                await asyncio.sleep(0.001)  # so the server reads it in many pieces
        answer = await read_answer(reader)
        writer.close()

    assert answer.status == 202
    assert server.publisher.bodies() == [payload]
    assert Counting.asgi == 0


async def test_chunked_and_other_requests_go_to_asgi_behind_pending_webhooks() -> None:
    chunked = (
        b"POST /webhooks/open HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(event(1))
        + event(1)
        + b"\r\n0\r\n\r\n"
    )
    other = b"GET /elsewhere HTTP/1.1\r\nhost: ingest\r\n\r\n"
    async with serving() as server:
        reader, writer = await server.connect()
        writer.write(webhook(event(0)) + chunked + other)
        await eventually(_calls(server, 1), within=5, what="the first webhook handed over")
        silent = await nothing_more(reader)  # nothing may overtake the first answer
        asgi_before = Counting.asgi
        server.publisher.ack(0)
        first = await read_answer(reader)
        await eventually(_calls(server, 2), within=5, what="the chunked webhook handed over")
        server.publisher.ack(1)
        second = await read_answer(reader)
        third = await read_answer(reader)
        writer.close()

    assert silent
    assert asgi_before == 0  # the chunked request waited in uvicorn's pipeline
    assert (first.status, second.status, third.status) == (202, 202, 404)
    assert server.publisher.bodies() == [{"alert_id": "a-0"}, {"alert_id": "a-1"}]
    assert Counting.asgi == 2  # the chunked webhook and the GET, not the first


async def test_connection_close_is_answered_then_closed_and_nothing_after_it_is_taken() -> None:
    async with serving(auto=True) as server:
        reader, writer = await server.connect()
        writer.write(webhook(event(0), "open", "connection: close") + webhook(event(1)))
        answer = await read_answer(reader)
        rest = await asyncio.wait_for(reader.read(), 5)  # the server closes: EOF
        writer.close()

    assert answer.status == 202
    assert answer.headers["connection"] == "close"
    assert rest == b""
    assert server.publisher.bodies() == [{"alert_id": "a-0"}]
    assert Counting.asgi == 0


async def test_refusals_are_the_same_bytes_as_uvicorn_and_asgi_write() -> None:
    body = event(7)
    requests = [
        webhook(body, "nobody"),  # 404
        webhook(body, "open").replace(b"application/json", b"text/plain"),  # 415
        webhook(b"{not json", "open"),  # 422
        webhook(body, "edr-alerts"),  # 401: no signature
        webhook(body, "edr-alerts", "x-baton-signature: sha256=00"),  # 403: wrong
        webhook(body, "open", "connection: close"),  # 202 and close
        webhook(body, "edr-alerts", f"x-baton-signature: {sign(body, SECRET.encode())}"),
    ]

    async def answers(fast: bool) -> list[bytes]:
        out = []
        async with serving(fast=fast, auto=True) as server:
            for request in requests:
                reader, writer = await server.connect()
                writer.write(request)
                answer = await read_answer(reader)
                writer.close()
                text = answer.raw
                if answer.status == 202:  # the event id differs
                    text = text.replace(answer.json()["id"].encode(), b"ID")
                date = answer.headers["date"].encode()
                out.append(text.replace(date, b"DATE"))
            if fast:
                assert Counting.asgi == 0
        return out

    fast, asgi = await answers(True), await answers(False)
    assert [a.split(b" ", 2)[1] for a in fast] == [
        b"404",
        b"415",
        b"422",
        b"401",
        b"403",
        b"202",
        b"202",
    ]
    assert fast == asgi


def _calls(server: Server, count: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return len(server.publisher.calls) >= count

    return probe


class _Transport:
    """A transport keeping what is written, with reading paused or not."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8081), "peername": ("127.0.0.1", 5)}.get(name)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_answers_wait_while_the_client_reads_no_more_and_go_when_it_does() -> None:
    publisher = HeldPublisher(auto=True)
    ready = asyncio.Event()
    ready.set()
    endpoint = webhook_endpoint(
        settings=IngestSettings(),
        catalog=catalog_of(story(OPEN)),
        catalog_ready=ready,
        publisher=publisher,
        secrets=EnvironmentSecrets({}),
        metrics=IngestMetrics(CollectorRegistry()),
        clock=lambda: NOW,
    )
    config = uvicorn.Config(
        WebhookFastPath(FastAPI(), endpoint), log_config=None, lifespan="off", proxy_headers=False
    )
    config.load()
    protocol = CorkedHttpTools(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]

    protocol.pause_writing()  # the transport's buffer is full
    protocol.data_received(webhook(event(0)) + webhook(event(1)))
    await asyncio.sleep(0.01)
    assert transport.written == []  # held, not buffered further
    assert not transport.reading
    assert len(publisher.calls) == 2

    protocol.resume_writing()
    answers = b"".join(transport.written)
    assert answers.count(b"HTTP/1.1 202 Accepted") == 2
    assert transport.reading
    protocol.connection_lost(None)
