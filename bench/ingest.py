"""Ingest throughput on this machine, printed as figures (never asserted).

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/ingest.py [--seconds 8]

1. HTTP: accepted webhooks/s and p50/p99 latency, one ingest process and two, for
   distinct signed webhooks sent by a Go load generator (``bench/webhook_load``, one
   epoll thread; ``--generator python`` for the asyncio one: ADR 0261), so the generator
   costs as little CPU as possible on a 2-core machine. By default each
   connection sends its next webhook when the last is answered (a closed loop: the
   service's ceiling, and the latency at saturation); with ``--rate R1,R2,...`` R
   webhooks/s fall due whatever the answers do and go over a pool of connections (an
   open loop, latency counted from when each fell due: the p50/p99 at that rate), and
   the highest rate held with p99 < 50 ms is named. For example
   ``--only http --rate 2000,3000,3500,4000,4500,5000 --connections 256``.
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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import JsonValue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT))

from figures import cpu_seconds as pid_cpu_seconds  # noqa: E402
from figures import percentile  # noqa: E402
from ingest_load import Generator, go_binary, http_load  # noqa: E402
from ingest_webhooks import SECRET_ENV, Load, webhooks_for  # noqa: E402
from namespaces import drop_namespaces  # noqa: E402
from platform_kit import Service  # noqa: E402
from tests.ingest.kit import new_namespace, prepare, read_all, service  # noqa: E402

from baton_common.kafka import make_producer  # noqa: E402

STORY = """
id: bench
version: 1
trigger:
  webhook: {path: bench, signature: {preset: github, secret: BENCH}}
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


def start_all(processes: list[Service]) -> None:
    for process in processes:
        process.start()
    for process in processes:
        process.wait_ready()


def stop_all(processes: list[Service]) -> None:
    for process in processes:
        process.stop()


QUIET = {"BATON_LOG_LEVEL": "WARNING", "BATON_INGEST_MAX_IN_FLIGHT": "5000"}


HTTP_SETTINGS = {"1": (1, "true"), "2": (2, "true"), "router-off": (1, "false")}


async def bench_http(
    bootstrap: str,
    seconds: float,
    connections: int,
    depth: int,
    rates: list[float],
    logs: Path,
    settings: list[str],
    probe: bool = False,
    extra: dict[str, str] | None = None,
    generator: Generator = "go",
) -> None:
    """Each setting's processes take each load in turn: the closed loop (no rates), or
    each open-loop rate, after which the highest rate held is named."""
    # "router-off" takes webhooks only; routing then runs in other processes.
    for replicas, router in (HTTP_SETTINGS[name] for name in settings):
        namespace = fresh_namespace()
        await prepare(bootstrap, namespace, [STORY])
        env = {**QUIET, **SECRET_ENV, "BATON_INGEST_ROUTER_ENABLED": router, **(extra or {})}
        probes = [logs / f"probe-{namespace}-{n}.json" for n in range(replicas)]
        processes = [
            service(
                "ingest",
                bootstrap,
                namespace,
                logs,
                {**env, **(probed(probes[n]) if probe else {})},
                label=f"http-{replicas}-{n}",
            )
            for n in range(replicas)
        ]
        what = f"{replicas} ingest process(es)" + ("" if router == "true" else ", router off")
        held: list[float] = []
        windows: list[tuple[float, float]] = []
        start_all(processes)
        try:
            ports = [p.port for p in processes]
            first = rates[0] if rates else 0.0
            warm_up = webhooks_for(first, 1.0, f"{namespace}-warm-up", ALERT)
            await http_load(generator, ports, warm_up, 1.0, connections, depth, first)
            for n, rate in enumerate(rates or [0.0]):
                webhooks = webhooks_for(rate, seconds, f"{namespace}-{n}", ALERT)
                cpu_before = cpu_seconds(processes)
                window = time.perf_counter()
                load = await http_load(
                    generator, ports, webhooks, seconds, connections, depth, rate
                )
                windows.append((window, time.perf_counter()))
                cpu = cpu_seconds(processes) - cpu_before
                if rate:
                    how = f", {rate:.0f}/s sent over them"
                else:
                    how = f" ({depth} pipelined each)" if depth > 1 else ""
                print(f"HTTP webhooks, {what}, {connections} connections{how}: {load.line}")
                per_event = f"{cpu * 1e6 / load.accepted:.0f}" if load.accepted else "-"
                sent = max(load.sent, 1)
                print(
                    f"  {per_event} CPU µs per accepted webhook in the ingest process(es), "
                    f"{load.generator_cpu * 1e6 / sent:.0f} per webhook sent in the {generator} "
                    f"load generator ({load.generator_system_cpu * 1e6 / sent:.0f} of it system)"
                )
                if rate and held_at(rate, load):
                    held.append(rate)
        finally:
            stop_all(processes)
        for (since, until), rate in zip(windows, rates or [0.0], strict=False) if probe else ():
            print(f"  probe, {what}" + (f", {rate:.0f}/s" if rate else "") + ":")
            for line in probe_summary(probes, since, until):
                print(f"    {line}")
        if rates:
            best = (
                f"{max(held):.0f}/s" if held else f"none of {', '.join(f'{r:.0f}' for r in rates)}"
            )
            print(f"  => {what}: highest rate held (all accepted, p99 < 50 ms): {best}")


PROBE = Path(__file__).resolve().parent / "ingest_probe"


def probed(out: Path) -> dict[str, str]:
    """The environment that loads ``ingest_probe`` into an ingest process (ADR 0260)."""
    path = os.pathsep.join(p for p in (str(PROBE), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "BATON_BENCH_PROBE": str(out)}


def probe_summary(files: list[Path], since: float, until: float) -> list[str]:
    """What the ingest processes' probes saw between ``since`` and ``until``."""
    seen: dict[str, list[float]] = {}
    for file in files:
        if not file.exists():
            return [f"no probe output in {file.name} (the process did not stop cleanly)"]
        for name, samples in json.loads(file.read_text()).items():
            seen.setdefault(name, []).extend(v for t, v in samples if since <= t <= until)

    def ms(name: str, q: float) -> str:
        values = seen.get(name) or [float("nan")]
        return f"{percentile(values, q * 100) * 1000:.1f}"

    batches = seen.get("batch_webhooks") or [0.0]
    ticks = seen.get("tick_cpu") or [0.0]
    long_ticks = sum(cpu > 0.010 for cpu in ticks)
    collections = ", ".join(
        f"gen{g} {len(seen.get(f'gc{g}', []))} (max {max(seen.get(f'gc{g}') or [0]) * 1000:.1f})"
        for g in range(3)
    )
    collections += f"; {sum(sum(seen.get(f'gc{g}', [])) for g in range(3)) * 1000:.0f} in all"
    return [
        f"server (request to answer) p50 {ms('server', 0.5)} ms, p99 {ms('server', 0.99)}; "
        f"of it the wait for the batch's ack p99 {ms('deliver', 0.99)}",
        f"produce batches: gathering p50 {ms('gathering', 0.5)} ms, p99 "
        f"{ms('gathering', 0.99)}; ack p50 {ms('ack', 0.5)}, p99 {ms('ack', 0.99)}; "
        f"{sum(batches) / len(batches):.1f} webhooks per batch (max {max(batches):.0f})",
        f"event loop: lag p50 {ms('lag', 0.5)} ms, p99 {ms('lag', 0.99)}, max "
        f"{ms('lag', 1.0)}; 5-ms ticks with > 10 ms of the loop's own CPU: {long_ticks} of "
        f"{len(ticks)} (max {max(ticks) * 1000:.1f} ms)",
        f"collections (CPU ms): {collections}",
    ]


def held_at(rate: float, load: Load) -> bool:
    """Whether a load at ``rate`` was held: every webhook that fell due accepted (no 429,
    503 or lost answer) with p99 under the goal's 50 ms, latency counted from when each
    fell due (so a server that falls behind shows it in the p99)."""
    return load.sent > 0 and load.accepted == load.sent and load.p99_ms < 50


def routed(process: Service) -> float:
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("baton_ingest_routed_total{")
    )


NAMESPACES: list[str] = []
"""The topic namespaces this run made, dropped when it ends."""


def fresh_namespace() -> str:
    NAMESPACES.append(namespace := new_namespace())
    return namespace


def cpu_seconds(processes: list[Service]) -> float:
    """User + system CPU time the processes have used so far (Linux ``/proc``)."""
    pids = [process.process.pid for process in processes if process.process is not None]
    assert len(pids) == len(processes), "a service that was never started"
    return sum(pid_cpu_seconds(pid) for pid in pids)


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
        namespace = fresh_namespace()  # fresh topics: each run routes the same events anew
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
    namespace = fresh_namespace()
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
        type=lambda text: [float(r) for r in text.split(",")],
        default=[],
        help="webhooks/s sent whatever the answers do, over a pool of --connections (an "
        "open loop); several, comma-separated, are run in turn on the same processes and "
        "the highest held with p99 < 50 ms is named (default: a closed loop, each "
        "connection sending when answered)",
    )
    parser.add_argument(
        "--processes",
        choices=list(HTTP_SETTINGS),
        action="append",
        help="HTTP settings to run (repeatable): 1 or 2 ingest processes, or 1 with the "
        "router off; default all three",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="load bench/ingest_probe into the ingest processes and print where a "
        "webhook's time went inside them (server time, batch gathering and acks, loop "
        "lag, collections; ADR 0260)",
    )
    parser.add_argument(
        "--ingest-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the HTTP settings' ingest processes (repeatable), e.g. "
        "BATON_INGEST_WEBHOOK_PRODUCERS=2",
    )
    parser.add_argument(
        "--generator",
        choices=["go", "python"],
        default="go",
        help="the webhook load generator: go (bench/webhook_load, built on first use "
        "into .baton/cache; ADR 0261) or python (the asyncio one, sharing this process)",
    )
    parser.add_argument("--events", type=int, default=30_000, help="Kafka-native events")
    parser.add_argument("--ceiling-records", type=int, default=300_000)
    parser.add_argument("--only", choices=["http", "kafka-native", "ceiling"], default=None)
    args = parser.parse_args()
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    print(f"bootstrap {bootstrap}, {os.cpu_count()} CPUs")
    if args.only in (None, "http") and args.generator == "go":
        go_binary()  # built (if its sources changed) before any load, not during one
    try:
        await run_phases(args, bootstrap)
    finally:
        await drop_namespaces(bootstrap, NAMESPACES)


async def run_phases(args: argparse.Namespace, bootstrap: str) -> None:
    with tempfile.TemporaryDirectory() as logs:
        if args.only in (None, "http"):
            await bench_http(
                bootstrap,
                args.seconds,
                args.connections,
                args.pipeline,
                args.rate,
                Path(logs),
                args.processes or list(HTTP_SETTINGS),
                args.probe,
                dict(setting.split("=", 1) for setting in args.ingest_env),
                args.generator,
            )
        if args.only in (None, "kafka-native"):
            await bench_kafka_native(bootstrap, args.events, Path(logs))
    if args.only in (None, "ceiling"):
        await bench_kafka_ceiling(bootstrap, args.ceiling_records)


if __name__ == "__main__":
    asyncio.run(main())
