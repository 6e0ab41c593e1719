"""CPU µs per webhook in the ingest HTTP server and webhook code alone (ADR 0263).

    uv run python bench/ingest_protocol.py [--requests 20000] [--pipeline 1]

Drives ``CorkedHttpTools`` in this process, on uvloop, with no socket and no Kafka: each request's
bytes go to the protocol's ``data_received`` over a transport that keeps what it is
given, with a publisher that acknowledges at once, and the next request is fed once the
answer was written (``--pipeline N``: N requests per feed). What remains is the server's
and the webhook code's own CPU per request (parser callbacks, the ASGI cycle and task
when there is one, checks, JSON parsing, the record, the answer's bytes): the part ADR
0262's profile put at ≈45 µs for uvicorn's per-request machinery. Kafka, the router,
the kernel's ``send`` and the load generator are not in it. Printed, never asserted.
Works on any commit whose ``webhook_endpoint`` and ``CorkedHttpTools`` take these
arguments, so the same file measures ``main`` (run it with that checkout's venv).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from uvicorn.server import ServerState

from baton_common.catalog import StoryCatalog
from baton_common.kafka import OutboundRecord
from baton_common.records import StoryPublished
from baton_common.story import parse_story
from baton_ingest.api import WebhookFastPath, webhook_endpoint, webhook_routes
from baton_ingest.corked import CorkedHttpTools
from baton_ingest.metrics import IngestMetrics
from baton_ingest.secrets import EnvironmentSecrets
from baton_ingest.settings import IngestSettings
from baton_ingest.signature import sign

STORY = """
id: bench
version: 1
trigger:
  webhook: {path: bench, signature: {preset: github, secret: BENCH}}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""
SECRET = "bench-secret"


class AckingPublisher:
    """Acknowledges every record at once (``hand`` where the code asks for it)."""

    def hand(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[tuple[asyncio.Future[None], int]] | None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return [(future, len(records))]

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        return [None] * len(records)

    async def publish(self, record: OutboundRecord) -> None:
        raise NotImplementedError

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        raise NotImplementedError

    async def send_many(self, records: list[OutboundRecord]) -> asyncio.Future[None]:
        raise NotImplementedError


class Transport:
    """Keeps the answers; ``answered`` is set once ``expected`` answers came."""

    def __init__(self) -> None:
        self.answers = 0
        self.accepted = 0
        self.expected = 0
        self.answered = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.answers += data.count(b"HTTP/1.1 ")
        self.accepted += data.count(b"HTTP/1.1 202 ")
        if self.answers >= self.expected:
            self.answered.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8081), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def request(n: int) -> bytes:
    body = json.dumps({"alert_id": f"a-{n:06d}", "severity": "high", "host": "ws-0042"}).encode()
    lines = [
        "POST /webhooks/bench HTTP/1.1",
        "host: 127.0.0.1:8081",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"x-hub-signature-256: {sign(body, SECRET.encode(), 'sha256=')}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def measure(requests: int, pipeline: int) -> None:
    ready = asyncio.Event()
    ready.set()
    catalog = StoryCatalog()
    catalog.add(StoryPublished(story=parse_story(STORY), source="bench"))
    endpoint = webhook_endpoint(
        settings=IngestSettings(),
        catalog=catalog,
        catalog_ready=ready,
        publisher=AckingPublisher(),
        secrets=EnvironmentSecrets({"BATON_SECRET_BENCH": SECRET}),
        metrics=IngestMetrics(CollectorRegistry()),
        clock=lambda: datetime.now(UTC),
    )
    inner = FastAPI()
    inner.include_router(webhook_routes(endpoint))
    config = uvicorn.Config(
        WebhookFastPath(inner, endpoint),
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        http=CorkedHttpTools,
    )
    config.load()
    state = ServerState()
    protocol = CorkedHttpTools(config=config, server_state=state, app_state={})
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    feeds = [
        b"".join(request(n * pipeline + k) for k in range(pipeline))
        for n in range(requests // pipeline)
    ]
    warm = feeds[: len(feeds) // 10]

    async def run(batch: list[bytes]) -> None:
        for data in batch:
            transport.expected = transport.answers + pipeline
            transport.answered.clear()
            protocol.data_received(data)
            await transport.answered.wait()

    await run(warm)
    gc.collect()
    accepted = transport.accepted
    cpu, wall = time.process_time(), time.perf_counter()
    await run(feeds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = len(feeds) * pipeline
    print(
        f"{done} webhooks ({transport.accepted - accepted} answered 202), {pipeline} per "
        f"feed: {cpu * 1e6 / done:.1f} CPU µs per webhook ({wall * 1e6 / done:.1f} µs wall)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeat):  # on uvloop, as uvicorn runs the service
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(args.requests, args.pipeline))


if __name__ == "__main__":
    main()
