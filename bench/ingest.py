"""Ingest throughput on this machine, printed as figures (never asserted).

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/ingest.py [--seconds 8]

1. HTTP: accepted webhooks/s and p50/p99 latency, one ingest process and two (a raw
   keep-alive HTTP/1.1 load generator with a fixed number of connections, so the
   generator costs as little CPU as possible on a 2-core machine). By default each
   connection sends its next webhook when the last is answered (a closed loop: the
   service's ceiling, and the latency at saturation); with ``--rate R`` they send R
   webhooks/s between them whatever the answers do (an open loop, latency counted from
   when each was due: the p50/p99 at that rate).
2. Kafka-native: events/s the router turns into StartRun, 30% duplicates in the mix.
3. The raw Kafka ceiling for records of the same size: Kafka's ProducerPerformance.

Each measurement uses its own topics (a fresh namespace) and is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import JsonValue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT))

from platform_kit import Service  # noqa: E402
from tests.ingest.kit import new_namespace, prepare, read_all, service  # noqa: E402

from baton_common.kafka import make_producer  # noqa: E402

STORY = """
id: bench
version: 1
trigger:
  webhook: {path: bench}
  dedup: {key: "{{ event.alert_id }}", window: 1h}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""
ALERT: dict[str, JsonValue] = {
    "alert_id": "a-000000",
    "severity": "high",
    "host": "ws-0042",
    "rule": "edr.proc.inject",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same webhook until ``stop_at``.

    A plain protocol (no stream reader, no regular expression) so that the generator
    costs little CPU on the cores it shares with the service (ADR 0240). ``depth``
    requests are outstanding at a time (HTTP/1.1 pipelining when above 1); the requests
    that answers free are written together in one write. Each request's latency runs
    from the write that carried it to the parse of its answer, and only 202s count.
    """

    def __init__(
        self,
        request: bytes,
        depth: int,
        stop_at: float,
        latencies: list[float],
        statuses: dict[int, int],
    ) -> None:
        self._request = request
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
        self._transport.write(self._request * count)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        answered = 0
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
            status = int(head[9:12])
            started = self._sent.popleft()
            self._statuses[status] = self._statuses.get(status, 0) + 1
            if status == 202:
                self._latencies.append(time.perf_counter() - started)
            answered += 1
        self._buffer = buffer
        if answered:
            self._send(answered)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _PacedConnection(_Connection):
    """A connection that sends one webhook every ``interval`` seconds from ``first``,
    whatever the answers do (an open loop, as wrk2 paces): a request the server is slow to
    answer waits behind the others on the connection (HTTP/1.1 pipelining), and its
    latency runs from the moment it was due, so a stalled server is not hidden by a
    generator that waits for it (coordinated omission)."""

    def __init__(
        self,
        request: bytes,
        interval: float,
        first: float,
        stop_at: float,
        latencies: list[float],
        statuses: dict[int, int],
    ) -> None:
        super().__init__(request, 1, stop_at, latencies, statuses)
        self._interval = interval
        self._due = first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._tick()

    def _tick(self) -> None:
        assert self._transport is not None
        if self._transport.is_closing():
            return
        if self._due >= self._stop_at:
            if not self._sent:
                self._transport.close()
            return
        now = time.perf_counter()
        due = [self._due]
        self._due += self._interval
        while self._due <= now and self._due < self._stop_at:  # late: catch up at once
            due.append(self._due)
            self._due += self._interval
        self._sent.extend(due)
        self._transport.write(self._request * len(due))
        asyncio.get_running_loop().call_later(max(0.0, self._due - now), self._tick)

    def _send(self, count: int) -> None:
        if self._due >= self._stop_at and not self._sent:
            assert self._transport is not None
            self._transport.close()


async def http_load(
    ports: list[int], seconds: float, connections: int, depth: int = 1, rate: float = 0.0
) -> tuple[str, int]:
    """``connections`` each keeping ``depth`` requests outstanding (a closed loop), or,
    with ``rate``, sending ``rate`` webhooks/s between them whatever the answers do."""
    body = json.dumps(ALERT).encode()
    request = (
        b"POST /webhooks/bench HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    interval = connections / rate if rate else 0.0

    def connection(n: int) -> _Connection:
        if not rate:
            return _Connection(request, depth, stop_at, latencies, statuses)
        first = started + n * interval / connections  # staggered: an even stream overall
        return _PacedConnection(request, interval, first, stop_at, latencies, statuses)

    opened = [
        await loop.create_connection(
            functools.partial(connection, n),
            "127.0.0.1",
            ports[n % len(ports)],
        )
        for n in range(connections)
    ]
    await asyncio.wait_for(
        asyncio.gather(*(protocol.closed for _, protocol in opened)), seconds + 60
    )
    elapsed = time.perf_counter() - started
    if not latencies:
        return f"no request accepted: {statuses}", 0
    p50, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    achieved = len(latencies) / elapsed
    line = (
        f"{achieved:8.0f} accepted/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   statuses {statuses}"
    )
    return line, len(latencies)


def start_all(processes: list[Service]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.wait_ready()


def stop_all(processes: list[Service]) -> None:
    for process in processes:
        process.stop()


QUIET = {"BATON_LOG_LEVEL": "WARNING", "BATON_INGEST_MAX_IN_FLIGHT": "5000"}


async def bench_http(
    bootstrap: str, seconds: float, connections: int, depth: int, rate: float, logs: Path
) -> None:
    # The third setting takes webhooks only; routing then runs in other processes.
    for replicas, router in ((1, "true"), (2, "true"), (1, "false")):
        namespace = new_namespace()
        await prepare(bootstrap, namespace, [STORY])
        env = {**QUIET, "BATON_INGEST_ROUTER_ENABLED": router}
        processes = [
            service("ingest", bootstrap, namespace, logs, env, label=f"http-{replicas}-{n}")
            for n in range(replicas)
        ]
        start_all(processes)
        try:
            ports = [p.port for p in processes]
            await http_load(ports, 1.0, connections, depth, rate)  # warm-up
            cpu_before = cpu_seconds(processes)
            load_before = time.process_time()
            line, accepted = await http_load(ports, seconds, connections, depth, rate)
            cpu = cpu_seconds(processes) - cpu_before
            load_cpu = time.process_time() - load_before
        finally:
            stop_all(processes)
        what = f"{replicas} ingest process(es)" + ("" if router == "true" else ", router off")
        per_event = f"{cpu * 1e6 / accepted:.0f}" if accepted else "-"
        generator = f"{load_cpu * 1e6 / accepted:.0f}" if accepted else "-"
        pipelined = f" ({depth} pipelined each)" if depth > 1 else ""
        if rate:
            pipelined = f", sending {rate:.0f}/s between them"
        print(f"HTTP webhooks, {what}, {connections} connections{pipelined}: {line}")
        print(
            f"  {per_event} CPU µs per accepted webhook in the ingest process(es), "
            f"{generator} in the load generator"
        )


def routed(process: Service) -> float:
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("baton_ingest_routed_total{")
    )


def cpu_seconds(processes: list[Service]) -> float:
    """User + system CPU time the processes have used so far (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in processes:
        assert process.process is not None
        fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


async def wait_group_stable(bootstrap: str, group: str, members: int, within: float = 60) -> None:
    """Until ``group`` is Stable with ``members`` members (each then holds its partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            [response] = await admin.describe_consumer_groups([group])
            _, _, state, _, _, joined = response.groups[0][:6]
            if state == "Stable" and len(joined) == members:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"consumer group {group} not stable with {members} members")
    finally:
        await admin.close()


async def produce_at_once(bootstrap: str, topic: str, events: int) -> None:
    """``events`` raw-JSON events, 30% of them repeating a dedup key, made visible at once.

    They are written in one Kafka transaction: the routers read ``read_committed``, so
    they see nothing until the commit and then all of it, and the measurement is of
    routing alone (not of this producer, nor of a router starting before the others).
    """
    distinct = int(events * 0.7)
    keys = [f"a-{n}" for n in range(distinct)]
    keys += [f"a-{random.randrange(distinct)}" for _ in range(events - distinct)]
    random.Random(1).shuffle(keys)
    producer = make_producer(bootstrap, client_id="bench", transactional_id=f"bench-{topic}")
    await producer.start()
    try:
        async with producer.transaction():
            batch = []
            for n, key in enumerate(keys):
                value = json.dumps({**ALERT, "alert_id": key}).encode()
                batch.append(
                    await producer.send(
                        topic, value, key=str(n).encode(), headers=[("source", b"bench")]
                    )
                )
            await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def command_span(bootstrap: str, topic: str) -> tuple[int, float]:
    """How many StartRun records ``topic`` holds, and the seconds from its first to its last."""
    records = await read_all(bootstrap, topic)
    stamps = [r.timestamp for r in records]  # type: ignore[attr-defined]
    return len(records), (max(stamps) - min(stamps)) / 1000 if stamps else 0.0


async def bench_kafka_native(bootstrap: str, events: int, logs: Path) -> None:
    for replicas in (1, 2):
        namespace = new_namespace()  # fresh topics: each run routes the same events anew
        topics = await prepare(bootstrap, namespace, [STORY])
        group = f"{namespace}-router"
        processes = [
            service("ingest", bootstrap, namespace, logs, QUIET, label=f"kn-{replicas}-{n}")
            for n in range(replicas)
        ]
        start_all(processes)
        try:
            await wait_group_stable(bootstrap, group, replicas)
            await produce_at_once(bootstrap, topics.ingest, events)
            cpu_before = cpu_seconds(processes)
            deadline = time.perf_counter() + 300
            done = 0.0
            while done < events and time.perf_counter() < deadline:
                await asyncio.sleep(0.5)
                done = sum(routed(p) for p in processes)
            cpu = cpu_seconds(processes) - cpu_before
        finally:
            stop_all(processes)
        commands, span = await command_span(bootstrap, topics.commands)
        rate = commands / span if span else 0.0
        print(
            f"Kafka-native, {replicas} router(s): {rate:8.0f} events/s routed to StartRun "
            f"({int(done)} of {events} events, 30% duplicate dedup keys; "
            f"{cpu * 1e6 / max(done, 1):.0f} CPU µs/event in the router processes)"
        )


def record_size() -> int:
    from baton_common.envelope import encode_record
    from baton_common.kafka import to_envelope
    from baton_common.records import EventReceived

    envelope = to_envelope(
        EventReceived(path="bench", body=ALERT),
        id="7b0c3f7e-0000-4000-8000-000000000000",
        source="baton/ingest/webhook/bench",
        time=datetime.now(UTC),
    )
    value, headers = encode_record(envelope)
    return len(value) + sum(len(k) + len(v) for k, v in headers)


async def bench_kafka_ceiling(bootstrap: str, records: int) -> None:
    namespace = new_namespace()
    topics = await prepare(bootstrap, namespace, [])
    size = record_size()
    cache = os.environ.get("BATON_CACHE_DIR") or str(Path.home() / ".cache/baton")
    command = [
        "java",
        "-Xmx256m",
        "-cp",
        f"{cache}/kafka-4.4.0/libs/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topics.ingest,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--bootstrap-server",
        bootstrap,
        "--command-property",  # one option, several values: repeating it keeps only the last
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=300
    )
    summary = [line for line in result.stdout.splitlines() if "records sent" in line]
    print(f"Raw Kafka ceiling (ProducerPerformance, {size}-byte records, acks=all):")
    print("  " + (summary[-1] if summary else result.stdout[-500:] + result.stderr[-500:]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per HTTP measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--pipeline", type=int, default=1, help="requests outstanding per connection"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="webhooks/s sent whatever the answers do (an open loop; default: each "
        "connection sends when answered)",
    )
    parser.add_argument("--events", type=int, default=30_000, help="Kafka-native events")
    parser.add_argument("--ceiling-records", type=int, default=300_000)
    parser.add_argument("--only", choices=["http", "kafka-native", "ceiling"], default=None)
    args = parser.parse_args()
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    print(f"bootstrap {bootstrap}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as logs:
        if args.only in (None, "http"):
            await bench_http(
                bootstrap, args.seconds, args.connections, args.pipeline, args.rate, Path(logs)
            )
        if args.only in (None, "kafka-native"):
            await bench_kafka_native(bootstrap, args.events, Path(logs))
    if args.only in (None, "ceiling"):
        await bench_kafka_ceiling(bootstrap, args.ceiling_records)


if __name__ == "__main__":
    asyncio.run(main())
