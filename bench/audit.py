"""Audit benchmark: projection throughput, rebuild time, freshness under load.

Needs the real Kafka and PostgreSQL (``BATON_KAFKA_BOOTSTRAP``, ``BATON_DATABASE_URL``),
for example those of ``make test``'s stack. Prints its figures; asserts nothing.

    uv run python bench/audit.py [--runs 20000] [--rebuild-events 200000] [--rate 1000]
        [--partitions 3] [--projectors 1|2] [--only store|rebuild] [--repeat 1]

With ``--projectors 2`` the partitions are split between this process and another one, as
two replicas of the service in one consumer group split them (ADR 0571): the store figure's
second projector is a process applying its partitions' batches; the rebuild's is a second
audit service in the same group. CPU figures add up both processes.

1. store: run logs (6 events a run: start, dispatch, success, gate, decision, end) applied
   straight to PostgreSQL in batches of a poll's share per partition, as the projector
   does (COPY + one fold per run per batch; 3 partitions concurrently, each in order).
   Twice: each run's events together, then runs interleaved (every run's first event,
   then every run's second, ...), as a log looks with many runs in flight: a batch then
   holds one event per run, and each run's row is folded and written once per event.
   Each timed window starts after a ``CHECKPOINT`` (so the previous window's dirty pages
   are not written during this one); with ``--repeat N`` both figures are measured N
   times, alternating, and their medians printed. The load average is printed with each.
2. rebuild: the same kind of log written to a fresh topic, then the audit service's
   projection (Kafka consumer included) started on an empty schema; time until every
   record is applied. Then again as ``baton audit rebuild`` does it: POST /admin/rebuild
   to the running service, which empties the store and re-projects from offset 0.
3. freshness: with the projection caught up, a steady stream of events is produced at
   ``--rate`` events/s; the ``baton_audit_freshness_seconds`` histogram (append → commit
   in PostgreSQL, where the API sees it) gives p50/p99 (bucket upper bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from namespaces import drop_namespaces
from prometheus_client import REGISTRY

from baton_audit.admin import positions
from baton_audit.consumer import Projector
from baton_audit.db import Pool, create_pool, migrate, quote_ident
from baton_audit.main import create_app
from baton_audit.settings import AuditSettings
from baton_audit.writer import AuditWriter
from baton_common.auth import AuthSettings, Identity
from baton_common.envelope import Envelope
from baton_common.events import (
    ApprovalGranted,
    ApprovalRequested,
    RunEvent,
    RunStarted,
    RunSucceeded,
    StepDispatched,
    StepSucceeded,
)
from baton_common.hashing import GENESIS, chain_hash
from baton_common.heap import settle_heap
from baton_common.kafka import OutboundRecord, make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.testing import Record, eventually
from baton_common.topics import provision_topics

T0 = datetime(2025, 1, 1, tzinfo=UTC)
# What one poll hands to a projector, split over its partitions (BATON_AUDIT_BATCH_RECORDS).
POLL = AuditSettings.model_fields["batch_records"].default


def run_log(run_id: str, start: datetime) -> list[Envelope]:
    events: list[RunEvent] = [
        RunStarted(run_id=run_id, story_id="bench", story_version=1, trigger={"n": run_id}),
        StepDispatched(
            run_id=run_id,
            step="lookup",
            attempt=1,
            attempt_id=f"{run_id}-1",
            action="http",
            queue="default",
            input={"url": "https://example.invalid/"},
        ),
        StepSucceeded(
            run_id=run_id, step="lookup", attempt=1, attempt_id=f"{run_id}-1", output={"s": 200}
        ),
        ApprovalRequested(run_id=run_id, step="ok", gate_id=f"g-{run_id}", approvers=["g:x"]),
        ApprovalGranted(run_id=run_id, step="ok", gate_id=f"g-{run_id}", approver="alice"),
        RunSucceeded(run_id=run_id),
    ]
    previous, log = GENESIS, []
    for seq, event in enumerate(events, 1):
        envelope = to_envelope(
            event,
            id=f"{run_id}-{seq}",
            source="baton/scheduler",
            time=start + timedelta(seconds=seq),
            subject=run_id,
            storyid="bench",
            storyversion=1,
            actor="scheduler",
            seq=seq,
            prevhash=previous,
        )
        envelope = envelope.model_copy(update={"hash": chain_hash(envelope)})
        previous = envelope.hash or ""
        log.append(envelope)
    return log


def outbound_logs(topic: str, runs: int, prefix: str, partitions: int) -> list[OutboundRecord]:
    out = []
    for n in range(runs):
        run_id = f"{prefix}-{n}"
        for envelope in run_log(run_id, T0 + timedelta(seconds=n)):
            out.append(outbound(topic, run_id, envelope, partition=n % partitions))
    return out


class _Sink:
    async def publish(self, record: OutboundRecord) -> None:
        raise AssertionError(f"unexpected dead letter: {record}")


async def fresh_pool(url: str) -> tuple[Pool, str]:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(url, schema=schema, max_size=4)
    await migrate(pool, schema=schema)
    return pool, schema


async def drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"drop schema if exists {quote_ident(schema)} cascade")
    finally:
        await conn.close()


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: state, ppid, ..., utime at [11]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> list[int]:
    return [int(x) for x in _stat(pid)[11:15]]


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of a local PostgreSQL: its finished backends (counted in the postmaster's
    children's time) and its live processes."""
    total = sum(_cpu_ticks(postmaster))
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(_stat(int(entry))[1]) == postmaster:
                total += sum(_cpu_ticks(int(entry))[:2])
        except (OSError, ValueError):
            continue
    return total / _TICKS


async def postgres_probe(url: str) -> tuple[int | None, object]:
    """The postmaster's pid if PostgreSQL runs on this machine, and the WAL position."""
    conn = await asyncpg.connect(url)
    try:
        backend, lsn = await conn.fetchrow("select pg_backend_pid(), pg_current_wal_lsn()")
        return int(_stat(backend)[1]), lsn
    except OSError:
        return None, lsn
    finally:
        await conn.close()


async def checkpoint(url: str) -> bool:
    """Write every dirty page to disk before a timed window, so the previous window's
    writes (and its share of a checkpoint) do not land in this one; False if the role may
    not (it needs ``pg_checkpoint``, which ``deploy/local/postgres.sh`` grants)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("checkpoint")
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await conn.close()


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


@dataclass(frozen=True)
class StoreFigure:
    """One timed window of the store figure (per event: µs of CPU, bytes of WAL)."""

    rate: float
    cpu: float
    busiest: float
    postgres: float | None
    wal: float
    bound: float | None


async def wal_since(url: str, lsn: object) -> float:
    conn = await asyncpg.connect(url)
    try:
        return float(await conn.fetchval("select pg_current_wal_lsn() - $1::pg_lsn", lsn))
    finally:
        await conn.close()


def store_records(runs: int, partitions: int, *, interleaved: bool) -> dict[int, list[Record]]:
    """The store figure's log, per partition, as a consumer would hand it over."""
    records = outbound_logs("baton.runs", runs, "s", partitions)
    if interleaved:  # seq-major: the runs' first events, then their second, ...
        records = [r for seq in range(6) for r in records[seq::6]]
    by_partition: dict[int, list[Record]] = {}
    for r in records:
        part = by_partition.setdefault(r.partition or 0, [])
        part.append(Record(r.topic, r.partition or 0, len(part), r.key, r.value, tuple(r.headers)))
    return by_partition


def store_projector(pool: Pool) -> Projector:
    """The service's projection, fed by hand: ``apply_batch`` never polls."""
    settle_heap(AuditSettings.model_fields["gc_threshold"].default)  # as the service starts
    writer = AuditWriter(
        runs_topic="baton.runs",
        stories_topic="baton.stories",
        kept_runs=AuditSettings.model_fields["kept_runs"].default,
    )
    return Projector(
        consumer=None,  # type: ignore[arg-type]  # apply_batch never polls
        pool=pool,
        handle=writer.apply,
        publisher=_Sink(),
        name="bench",
        dlq_topic="baton.dlq",
    )


async def apply_share(projector: Projector, share: dict[int, list[Record]]) -> None:
    """As a projector does: its partitions concurrently, each partition's batches in order,
    a poll's records split over its partitions."""
    batch = max(1, POLL // len(share))

    async def one_partition(partition: int, recs: list[Record]) -> None:
        for i in range(0, len(recs), batch):
            await projector.apply_batch("baton.runs", partition, recs[i : i + batch])

    await asyncio.gather(*(one_partition(p, recs) for p, recs in share.items()))


def store_worker(
    url: str, schema: str, share: dict[int, list[Record]], ready: Any, go: Any, out: Any
) -> None:
    """A second projector process of the store figure: applies its share of the partitions
    when ``go`` is set and sends back its CPU seconds."""

    async def work() -> None:
        pool = await create_pool(url, schema=schema, max_size=4)
        try:
            projector = store_projector(pool)
            ready.set()
            await asyncio.to_thread(go.wait)
            cpu = time.process_time()
            await apply_share(projector, share)
            out.put(time.process_time() - cpu)
        finally:
            await pool.close()

    asyncio.run(work())


async def bench_store(
    url: str, runs: int, *, interleaved: bool, partitions: int, projectors: int
) -> StoreFigure:
    by_partition = store_records(runs, partitions, interleaved=interleaved)
    shares = [
        {p: recs for p, recs in by_partition.items() if p % projectors == k}
        for k in range(projectors)
    ]
    pool, schema = await fresh_pool(url)
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    workers = []
    try:
        projector = store_projector(pool)
        for share in shares[1:]:  # the others in processes of their own
            ready = context.Event()
            worker = context.Process(
                target=store_worker, args=(url, schema, share, ready, go, out), daemon=True
            )
            worker.start()
            workers.append(worker)
            await asyncio.to_thread(ready.wait)
        if not await checkpoint(url):
            print("(CHECKPOINT refused: the role lacks pg_checkpoint; windows may overlap)")
        postmaster, lsn = await postgres_probe(url)
        pg_cpu = postgres_cpu(postmaster) if postmaster else 0.0
        started, cpu = time.perf_counter(), time.process_time()
        go.set()
        await apply_share(projector, shares[0])
        cpus = [time.process_time() - cpu]
        for _ in workers:
            cpus.append(await asyncio.to_thread(out.get))
        elapsed = time.perf_counter() - started
        pg_cpu = postgres_cpu(postmaster) - pg_cpu if postmaster else 0.0
        wal = await wal_since(url, lsn)
    finally:
        for worker in workers:
            worker.join(timeout=30)
        await pool.close()
        await drop(url, schema)
    n = sum(len(recs) for recs in by_partition.values())
    cpu = sum(cpus)
    label = "store (runs interleaved):" if interleaved else "store:    "
    # On a loaded machine the rate says little; what two free cores would allow does: the
    # busiest projector's CPU, or all the CPU (projectors and PostgreSQL) over two cores.
    bound = n / max(max(cpus), (cpu + pg_cpu) / 2) if postmaster else 0.0
    print(
        f"{label} {n} events ({runs} runs, {partitions} partitions, {projectors} projector"
        f"{'s' if projectors > 1 else ''}) in {elapsed:.2f} s = {n / elapsed:,.0f} events/s"
        f" (projection CPU {cpu / n * 1e6:,.0f} µs/event, busiest projector"
        f" {max(cpus) / n * 1e6:,.0f}; PostgreSQL "
        + (f"CPU {pg_cpu / n * 1e6:,.0f} µs/event, " if postmaster else "")
        + f"WAL {wal / n:,.0f} B/event)"
        + (f"; CPU bound on 2 free cores {bound:,.0f} events/s" if postmaster else "")
        + f"; {load_average()}"
    )
    return StoreFigure(
        rate=n / elapsed,
        cpu=cpu / n * 1e6,
        busiest=max(cpus) / n * 1e6,
        postgres=pg_cpu / n * 1e6 if postmaster else None,
        wal=wal / n,
        bound=bound if postmaster else None,
    )


def print_medians(label: str, figures: list[StoreFigure]) -> None:
    """The median of each figure over the windows (each figure's own median)."""

    def median(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{statistics.median(known):,.0f}" if known else "n/a"

    print(
        f"{label} median of {len(figures)}: {median([f.rate for f in figures])} events/s"
        f" (of {', '.join(f'{f.rate:,.0f}' for f in figures)}); projection CPU"
        f" {median([f.cpu for f in figures])} µs/event, busiest projector"
        f" {median([f.busiest for f in figures])}; PostgreSQL CPU"
        f" {median([f.postgres for f in figures])} µs/event, WAL"
        f" {median([f.wal for f in figures])} B/event; CPU bound on 2 free cores"
        f" {median([f.bound for f in figures])} events/s; {load_average()}"
    )


async def produce(bootstrap: str, records: list[OutboundRecord]) -> None:
    producer = make_producer(bootstrap, client_id="bench-audit")
    await producer.start()
    try:
        for i in range(0, len(records), 5000):
            futures = [
                await producer.send(
                    r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in records[i : i + 5000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def paced(bootstrap: str, records: list[OutboundRecord], rate: int) -> None:
    """Send ``records`` at about ``rate`` a second, in ten ticks a second."""
    producer = make_producer(bootstrap, client_id="bench-audit-load")
    await producer.start()
    try:
        tick = max(1, rate // 10)
        started = time.perf_counter()
        for i in range(0, len(records), tick):
            futures = [
                await producer.send(
                    r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in records[i : i + tick]
            ]
            await asyncio.gather(*futures)
            await asyncio.sleep(max(0.0, started + (i + tick) / rate - time.perf_counter()))
    finally:
        await producer.stop()


def histogram() -> dict[float, float]:
    buckets: dict[float, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "baton_audit_freshness_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts[float("inf")]
    if total == 0:
        return "n/a"
    for le, count in counts.items():
        if count >= q * total:
            return f"<= {le} s" if le != float("inf") else "> 60 s"
    return "n/a"


async def applied(pool: Pool, topic: str, target: int) -> None:
    """Wait until the projection has applied ``target`` records of ``topic``."""

    async def done() -> bool:
        return sum((await positions(pool)).get(topic, {}).values()) >= target

    await eventually(done, within=3600, interval=0.2, what=f"{target} records applied")


def replica_worker(settings: AuditSettings, ready: Any, go: Any, pipe: Any) -> None:
    """Another replica of the audit service (same consumer group and store), in a process
    of its own as a deployment's second pod: started when ``go`` is set; answers each
    message on ``pipe`` with its freshness histogram, until told "stop"."""

    async def work() -> None:
        app = create_app(settings)
        ready.set()
        await asyncio.to_thread(go.wait)
        async with app.router.lifespan_context(app):
            while await asyncio.to_thread(pipe.recv) != "stop":
                pipe.send(histogram())

    asyncio.run(work())


class Replicas:
    """The replicas beyond the first (which runs in this process)."""

    def __init__(self, settings: AuditSettings, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.go = context.Event()
        self._pipes: list[Any] = []
        self._workers: list[Any] = []
        for _ in range(count):
            ready = context.Event()
            here, there = context.Pipe()
            worker = context.Process(
                target=replica_worker, args=(settings, ready, self.go, there), daemon=True
            )
            worker.start()
            ready.wait()
            self._pipes.append(here)
            self._workers.append(worker)

    def cpus(self) -> list[float]:
        """CPU seconds each replica has used so far."""
        return [sum(_cpu_ticks(w.pid)[:2]) / _TICKS for w in self._workers]

    async def histogram(self) -> dict[float, float]:
        merged: dict[float, float] = {}
        for pipe in self._pipes:
            pipe.send("snap")
            for le, count in (await asyncio.to_thread(pipe.recv)).items():
                merged[le] = merged.get(le, 0.0) + count
        return merged

    def stop(self) -> None:
        for pipe in self._pipes:
            pipe.send("stop")
        for worker in self._workers:
            worker.join(timeout=60)


class Meter:
    """CPU seconds used from its creation on: by each replica (this process first) and by
    PostgreSQL (when it runs on this machine). The Kafka broker's are not counted."""

    def __init__(self, others: Replicas, postmaster: int | None) -> None:
        self._others, self._postmaster = others, postmaster
        self._services, self._postgres = self._read()

    def _read(self) -> tuple[list[float], float]:
        services = [time.process_time(), *self._others.cpus()]
        return services, postgres_cpu(self._postmaster) if self._postmaster else 0.0

    def note(self, events: int) -> str:
        """Per event: the services' CPU, the busiest replica's, PostgreSQL's, and the rate
        two free cores would allow (the busiest replica, or all of it over two cores)."""
        services, postgres = self._read()
        used = [now - then for now, then in zip(services, self._services, strict=True)]
        pg = postgres - self._postgres
        bound = events / max(max(used), (sum(used) + pg) / 2)
        return (
            f"service CPU {sum(used) / events * 1e6:,.0f} µs/event, busiest replica"
            f" {max(used) / events * 1e6:,.0f}"
            + (f"; PostgreSQL CPU {pg / events * 1e6:,.0f} µs/event" if self._postmaster else "")
            + f"; CPU bound on 2 free cores {bound:,.0f} events/s"
        )


BENCH_TOKEN = "bench-admin"
BENCH_AUTH = AuthSettings(
    tokens={BENCH_TOKEN: Identity.model_validate({"user": "bench", "roles": ["admin"]})}
)


async def rebuild_of_running(
    app: FastAPI, probe: Pool, probe_url: str, topic: str, events: int, others: Replicas, label: str
) -> None:
    """``baton audit rebuild`` against the running service: POST /admin/rebuild to this
    replica, which empties the store for all of them; time until every record is applied
    again."""
    transport = httpx.ASGITransport(app=app)
    postmaster, _ = await postgres_probe(probe_url)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        started, meter = time.perf_counter(), Meter(others, postmaster)
        response = await client.post(
            "/admin/rebuild", headers={"Authorization": f"Bearer {BENCH_TOKEN}"}
        )
        response.raise_for_status()
        await applied(probe, topic, events)
    elapsed = time.perf_counter() - started
    print(
        f"rebuild:   {events} events again (POST /admin/rebuild to the running service, {label})"
        f" in {elapsed:.1f} s = {events / elapsed:,.0f} events/s ({meter.note(events)});"
        f" 1,000,000 events at this rate: {1_000_000 / (events / elapsed) / 60:.1f} min"
    )


def _sum(a: dict[float, float], b: dict[float, float]) -> dict[float, float]:
    return {le: a.get(le, 0.0) + b.get(le, 0.0) for le in a.keys() | b.keys()}


async def bench_rebuild_and_freshness(
    bootstrap: str, url: str, events: int, rate: int, seconds: int, partitions: int, projectors: int
) -> None:
    ns = f"bench{uuid.uuid4().hex[:8]}"
    names = TopicSettings(
        stories=f"{ns}.baton.stories", ingest=f"{ns}.baton.ingest",
        commands=f"{ns}.baton.commands", runs=f"{ns}.baton.runs",
        tasks_prefix=f"{ns}.baton.tasks.", approvals=f"{ns}.baton.tasks.approvals",
        dlq=f"{ns}.baton.dlq", partitions=partitions, ingest_partitions=1,
    )  # fmt: skip
    await provision_topics(bootstrap, names)
    runs = events // 6
    t = time.perf_counter()
    await produce(bootstrap, outbound_logs(names.runs, runs, "r", partitions))
    print(f"(wrote {runs * 6} events to Kafka in {time.perf_counter() - t:.1f} s)")
    schema = f"bench_audit_{ns}"
    settings = AuditSettings(
        kafka_bootstrap=bootstrap,
        database_url=url,
        db_schema=schema,
        group_id=ns,
        topics=names,
        auth=BENCH_AUTH,
    )
    app = create_app(settings)
    others = Replicas(settings, projectors - 1)
    pool = await create_pool(url, schema="public", max_size=1)
    try:
        postmaster, _ = await postgres_probe(url)
        started, meter = time.perf_counter(), Meter(others, postmaster)
        others.go.set()  # every replica starts now, on an empty store
        async with app.router.lifespan_context(app):
            probe = await create_pool(url, schema=schema, max_size=1)
            try:
                await applied(probe, names.runs, runs * 6)
                elapsed = time.perf_counter() - started
                label = f"{partitions} partitions, {projectors} projector" + (
                    "s" if projectors > 1 else ""
                )
                print(
                    f"rebuild:   {runs * 6} events from offset 0 (Kafka → PostgreSQL, {label},"
                    f" services started now) in {elapsed:.1f} s = {runs * 6 / elapsed:,.0f}"
                    f" events/s ({meter.note(runs * 6)});"
                    f" 1,000,000 events at this rate: {1_000_000 / (runs * 6 / elapsed) / 60:.1f}"
                    " min"
                )
                await rebuild_of_running(app, probe, url, names.runs, runs * 6, others, label)
                before = _sum(histogram(), await others.histogram())
                total = rate * seconds
                load = outbound_logs(names.runs, total // 6, "f", partitions)
                # The load comes from another thread with its own loop and one producer,
                # as the scheduler would be another process.
                await asyncio.to_thread(asyncio.run, paced(bootstrap, load, rate))
                target = runs * 6 + len(load)
                await applied(probe, names.runs, target)
                after = _sum(histogram(), await others.histogram())
                p50, p99 = quantile(before, after, 0.5), quantile(before, after, 0.99)
                print(
                    f"freshness: {len(load)} events at ~{rate}/s: p50 {p50}, p99 {p99}"
                    " (append → visible in the audit store)"
                )
            finally:
                await probe.close()
    finally:
        others.stop()
        await pool.close()
        await drop(url, schema)
        await drop_namespaces(bootstrap, [ns])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs for the store figure")
    parser.add_argument("--rebuild-events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1000, help="events/s for freshness")
    parser.add_argument("--seconds", type=int, default=10, help="length of the freshness load")
    parser.add_argument(
        "--partitions", type=int, default=3, help="partitions of the log (store and rebuild)"
    )
    parser.add_argument(
        "--projectors",
        type=int,
        default=1,
        choices=(1, 2),
        help="projector processes splitting the partitions (replicas of the service)",
    )
    parser.add_argument(
        "--only", choices=("store", "rebuild"), help="run one part (rebuild includes freshness)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="store figure: timed windows of each kind (alternating); prints their medians",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    bootstrap = os.environ["BATON_KAFKA_BOOTSTRAP"]
    url = os.environ["BATON_DATABASE_URL"]
    split = {"partitions": args.partitions, "projectors": args.projectors}
    print(f"audit bench: {load_average()} (1 and 5 minutes) at the start")
    if args.only != "rebuild":
        grouped, interleaved = [], []
        for _ in range(args.repeat):
            grouped.append(await bench_store(url, args.runs, interleaved=False, **split))
            interleaved.append(await bench_store(url, args.runs, interleaved=True, **split))
        if args.repeat > 1:
            print_medians("store:    ", grouped)
            print_medians("store (runs interleaved):", interleaved)
    if args.only != "store":
        await bench_rebuild_and_freshness(
            bootstrap, url, args.rebuild_events, args.rate, args.seconds, **split
        )


if __name__ == "__main__":
    asyncio.run(main())
