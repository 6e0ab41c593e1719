"""The asyncio webhook load generator of ``bench/ingest.py`` (ADR 0240, 0260), kept as
``--generator python`` beside the Go one (ADR 0261)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
from collections import deque
from collections.abc import Iterator

from figures import percentile
from ingest_webhooks import SIGNATURE_HEADER, Load, Webhook

__all__ = ["python_load"]


def raw_requests(webhooks: list[Webhook]) -> Iterator[bytes]:
    """The webhooks as raw HTTP/1.1 requests, in turn and round again when all are sent."""
    requests = [
        b"POST /webhooks/bench HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"{SIGNATURE_HEADER}: {w.signature}\r\nContent-Length: {len(w.body)}\r\n\r\n".encode()
        + w.body
        for w in webhooks
    ]
    return itertools.cycle(requests)


def _answers(buffer: bytes) -> tuple[list[int], bytes]:
    """The statuses of the whole HTTP answers at the start of ``buffer``, and the rest."""
    statuses = []
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            break
        head = buffer[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(buffer) < end + 4 + length:
            break
        buffer = buffer[end + 4 + length :]
        statuses.append(int(head[9:12]))
    return statuses, buffer


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending webhooks until ``stop_at``.

    A plain protocol (no stream reader, no regular expression) so that the generator
    costs little CPU on the cores it shares with the service (ADR 0240). ``depth``
    requests are outstanding at a time (HTTP/1.1 pipelining when above 1); the requests
    that answers free are written together in one write. Each request's latency runs
    from the write that carried it to the parse of its answer, and only 202s count.
    """

    def __init__(
        self,
        requests: Iterator[bytes],
        depth: int,
        stop_at: float,
        latencies: list[float],
        statuses: dict[int, int],
    ) -> None:
        self._requests = requests
        self._depth = depth
        self._stop_at = stop_at
        self._latencies = latencies
        self._statuses = statuses
        self._sent: deque[float] = deque()
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send(self._depth)

    def _send(self, count: int) -> None:
        assert self._transport is not None
        now = time.perf_counter()
        if now >= self._stop_at:
            if not self._sent:
                self._transport.close()
            return
        self._sent.extend([now] * count)
        self._transport.write(b"".join(itertools.islice(self._requests, count)))

    def data_received(self, data: bytes) -> None:
        answered, self._buffer = _answers(self._buffer + data if self._buffer else data)
        now = time.perf_counter()
        for status in answered:
            started = self._sent.popleft()
            self._statuses[status] = self._statuses.get(status, 0) + 1
            if status == 202:
                self._latencies.append(now - started)
        if answered:
            self._send(len(answered))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Schedule:
    """An open loop (ADR 0260): ``rate`` webhooks/s fall due at even intervals whatever
    the answers do, and each goes on the pool's connection idle longest, or, when every
    connection is busy, on the first to come free (in the order they fell due).

    Each latency runs from when the webhook fell due, so neither a busy pool nor a late
    generator hides a slow server (coordinated omission, as wrk2 counts it); and no
    webhook waits behind another on its connection (HTTP/1.1 head-of-line blocking, which
    a fixed set of paced connections added to every stall: a sender with a pool of
    connections does not see it). ``late`` holds how long each waited to be written:
    the generator's lag plus any wait for a free connection.
    """

    def __init__(self, rate: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = 1 / rate
        self._next = self._stop_at = 0.0
        self._idle: deque[_PooledConnection] = deque()
        self._backlog: deque[float] = deque()
        self._open = 0
        self.due = 0  # webhooks that fell due
        self.late: list[float] = []
        self.done: asyncio.Future[None] = self._loop.create_future()

    def joined(self, connection: _PooledConnection) -> None:
        self._open += 1
        self._idle.append(connection)

    def start(self, seconds: float) -> None:
        """The first webhook falls due now, the last before ``seconds`` from now."""
        self._next = time.perf_counter()
        self._stop_at = self._next + seconds
        self._tick()

    def _tick(self) -> None:
        now = time.perf_counter()
        while self._next <= now and self._next < self._stop_at:
            self._backlog.append(self._next)
            self.due += 1
            self._next += self._interval
        self._dispatch(now)
        if self._next < self._stop_at:
            self._loop.call_later(max(0.0, self._next - now), self._tick)
        else:
            self._finish_if_drained()

    def _dispatch(self, now: float) -> None:
        while self._backlog and self._idle:
            due = self._backlog.popleft()
            self.late.append(now - due)
            self._idle.popleft().send(due)

    def freed(self, connection: _PooledConnection) -> None:
        self._idle.append(connection)
        if self._backlog:
            self._dispatch(time.perf_counter())
        elif self._next >= self._stop_at:
            self._finish_if_drained()

    def lost(self, connection: _PooledConnection) -> None:
        self._open -= 1
        if connection in self._idle:
            self._idle.remove(connection)
        if not self._open and not self.done.done():
            self.done.set_result(None)

    def _finish_if_drained(self) -> None:
        if self._backlog or len(self._idle) < self._open:
            return
        for connection in self._idle:
            connection.close()
        if not self.done.done():
            self.done.set_result(None)


class _PooledConnection(asyncio.Protocol):
    """A keep-alive connection of a :class:`_Schedule`'s pool: one webhook at a time."""

    def __init__(
        self,
        schedule: _Schedule,
        requests: Iterator[bytes],
        latencies: list[float],
        statuses: dict[int, int],
    ) -> None:
        self._schedule = schedule
        self._requests = requests
        self._latencies = latencies
        self._statuses = statuses
        self._due = 0.0
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._schedule.joined(self)

    def send(self, due: float) -> None:
        assert self._transport is not None
        self._due = due
        self._transport.write(next(self._requests))

    def close(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        answered, self._buffer = _answers(self._buffer + data if self._buffer else data)
        for status in answered:
            self._statuses[status] = self._statuses.get(status, 0) + 1
            if status == 202:
                self._latencies.append(time.perf_counter() - self._due)
            self._schedule.freed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._schedule.lost(self)


async def python_load(
    ports: list[int],
    webhooks: list[Webhook],
    seconds: float,
    connections: int,
    depth: int = 1,
    rate: float = 0.0,
) -> Load:
    """``connections`` each keeping ``depth`` requests outstanding (a closed loop), or,
    with ``rate``, ``rate`` webhooks/s sent over a pool of ``connections`` whatever the
    answers do (an open loop).

    The collector is off while the load runs (the generator's objects are freed by
    reference counting; a collection of its start-up heap stalled it for tens of ms,
    which an open loop counts as the server's latency).
    """
    requests = raw_requests(webhooks)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    cpu_before = os.times()
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        stop_at = started + seconds
        schedule = _Schedule(rate) if rate else None

        def connection() -> asyncio.Protocol:
            if schedule is None:  # each starts sending as it connects
                return _Connection(requests, depth, stop_at, latencies, statuses)
            return _PooledConnection(schedule, requests, latencies, statuses)

        if rate:  # each connection used about once a second or more: none sits idle
            connections = min(connections, max(1, int(rate)))  # long enough to be closed
        opened = [
            await loop.create_connection(connection, "127.0.0.1", ports[n % len(ports)])
            for n in range(connections)
        ]
        if schedule is None:
            closing = [p.closed for _, p in opened if isinstance(p, _Connection)]
            await asyncio.wait_for(asyncio.gather(*closing), seconds + 60)
        else:  # the pool is open: the webhooks fall due from now
            started = time.perf_counter()
            schedule.start(seconds)
            await asyncio.wait_for(schedule.done, seconds + 60)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    cpu_after = os.times()
    system = cpu_after.system - cpu_before.system
    cpu = (cpu_after.user - cpu_before.user + system, system)
    sent = schedule.due if schedule is not None else sum(statuses.values())
    if not latencies:
        return Load(f"no request accepted: {statuses}", 0, sent, float("inf"), *cpu)
    p50, p99 = (percentile(latencies, q) * 1000 for q in (50, 99))
    achieved = len(latencies) / elapsed
    line = (
        f"{achieved:8.0f} accepted/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   statuses {statuses}"
    )
    if schedule is not None:  # the generator's lag and waits for a connection, in the latency
        line += f"   written late: p99 {percentile(schedule.late, 99) * 1000:.1f} ms"
    return Load(line, len(latencies), sent, p99, *cpu)
