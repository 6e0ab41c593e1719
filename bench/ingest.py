"""Ingest throughput on this machine, printed as figures (never asserted).

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/ingest.py [--seconds 8]

1. HTTP: accepted webhooks/s and p50/p99 latency, one ingest process and two (a raw
   keep-alive HTTP/1.1 load generator with a fixed number of connections, so the
   generator costs as little CPU as possible on a 2-core machine).
2. Kafka-native: events/s the router turns into StartRun, 30% duplicates in the mix.
3. The raw Kafka ceiling for records of the same size: Kafka's ProducerPerformance.

Each measurement uses its own topics (a fresh namespace) and is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "tests"))

from platform_kit import Service  # noqa: E402

from baton_common.kafka import make_producer  # noqa: E402
from ingest.kit import new_namespace, prepare, service  # noqa: E402

STORY = """
id: bench
version: 1
trigger:
  webhook: {path: bench}
  dedup: {key: "{{ event.alert_id }}", window: 1h}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""
ALERT = {"alert_id": "a-000000", "severity": "high", "host": "ws-0042", "rule": "edr.proc.inject"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _connection(
    port: int, body: bytes, stop_at: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /webhooks/bench HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 202:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def http_load(ports: list[int], seconds: float, connections: int) -> str:
    body = json.dumps(ALERT).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(ports[n % len(ports)], body, stop_at, latencies, statuses)
            for n in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    if not latencies:
        return f"no request accepted: {statuses}"
    p50, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    rate = len(latencies) / elapsed
    return f"{rate:8.0f} accepted/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   statuses {statuses}"


def start_all(processes: list[Service]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.wait_ready()


def stop_all(processes: list[Service]) -> None:
    for process in processes:
        process.stop()


QUIET = {"BATON_LOG_LEVEL": "WARNING", "BATON_INGEST_MAX_IN_FLIGHT": "5000"}


async def bench_http(bootstrap: str, seconds: float, connections: int, logs: Path) -> None:
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
            await http_load([p.port for p in processes], 1.0, connections)  # warm-up
            line = await http_load([p.port for p in processes], seconds, connections)
        finally:
            stop_all(processes)
        what = f"{replicas} ingest process(es)" + ("" if router == "true" else ", router off")
        print(f"HTTP webhooks, {what}, {connections} connections: {line}")


def routed(process: Service) -> float:
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("baton_ingest_routed_total{")
    )


async def bench_kafka_native(bootstrap: str, events: int, logs: Path) -> None:
    namespace = new_namespace()
    topics = await prepare(bootstrap, namespace, [STORY])
    distinct = int(events * 0.7)
    keys = [f"a-{n}" for n in range(distinct)]
    keys += [f"a-{random.randrange(distinct)}" for _ in range(events - distinct)]
    random.Random(1).shuffle(keys)
    producer = make_producer(bootstrap, client_id="bench")
    await producer.start()
    try:
        batch = []
        for n, key in enumerate(keys):
            value = json.dumps({**ALERT, "alert_id": key}).encode()
            batch.append(
                await producer.send(
                    topics.ingest, value, key=str(n).encode(), headers=[("source", b"bench")]
                )
            )
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    for replicas in (1, 2):
        group = {"BATON_INGEST_ROUTER_GROUP": f"{namespace}-router-{replicas}"}
        processes = [
            service(
                "ingest", bootstrap, namespace, logs, {**QUIET, **group}, label=f"kn-{replicas}-{n}"
            )
            for n in range(replicas)
        ]
        start_all(processes)
        try:
            first: tuple[float, float] | None = None
            deadline = time.perf_counter() + 300
            while time.perf_counter() < deadline:
                done = sum(routed(p) for p in processes)
                now = time.perf_counter()
                if first is None and done > 0:
                    first = (now, done)
                if done >= events:
                    break
                await asyncio.sleep(0.2)
            assert first is not None
            rate = (done - first[1]) / max(now - first[0], 1e-9)
        finally:
            stop_all(processes)
        print(
            f"Kafka-native, {replicas} router(s): {rate:8.0f} events/s routed to StartRun "
            f"({int(done)} of {events} events, 30% duplicate dedup keys)"
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
    parser.add_argument("--events", type=int, default=30_000, help="Kafka-native events")
    parser.add_argument("--ceiling-records", type=int, default=300_000)
    parser.add_argument("--only", choices=["http", "kafka-native", "ceiling"], default=None)
    args = parser.parse_args()
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    print(f"bootstrap {bootstrap}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as logs:
        if args.only in (None, "http"):
            await bench_http(bootstrap, args.seconds, args.connections, Path(logs))
        if args.only in (None, "kafka-native"):
            await bench_kafka_native(bootstrap, args.events, Path(logs))
    if args.only in (None, "ceiling"):
        await bench_kafka_ceiling(bootstrap, args.ceiling_records)


if __name__ == "__main__":
    asyncio.run(main())
