"""Scheduler benchmark through the real Kafka, with transactions (issue 3).

Phases (each bounded; figures are printed, never asserted):

1. throughput: ``--runs`` runs of an 8-step story with a 4-way fan-out are started at
   once; in-process fake executors answer every task immediately. Prints commands/s and
   log records/s (events on ``baton.runs`` plus task records) from the first StartRun to
   the last RunSucceeded, and a cProfile summary of where the process spent its time.
2. latency: runs started at half the measured run rate (or at ``--latency-rate``, to
   compare two versions at the same load) for ``--latency-seconds``; prints p50/p99 from a
   CompleteStep acknowledged by Kafka to the StepDispatched it causes being readable
   (``read_committed``) on ``baton.runs``, as an observer process of its own fetched it
   (and, for comparison, as this process's event loop, busy with the fake executors,
   got to it). The bench's own heap is frozen first, so its full collections (up to
   ~0.5 s with the throughput phase's objects alive) do not delay its timestamps.
   ``--dump-samples FILE`` writes the observer process's samples to FILE, one per line in
   milliseconds, in the order the StepDispatched were read, to study the tail offline.
3. recovery: one partition of a fresh ``baton.runs`` holding ``--finished`` finished runs
   and ``--waiting`` runs waiting on a step, built with the real decider and journal;
   prints the time ``rebuild_partition`` takes.

Usage: ``BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/scheduler.py``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import figures
from namespaces import drop_namespaces
from stages import Scrape, print_stages, scrape

from baton_common import ids
from baton_common.catalog import StoryCatalog
from baton_common.commands import CompleteStep, StartRun
from baton_common.envelope import Envelope, decode_record
from baton_common.kafka import make_consumer, make_producer, outbound, to_envelope
from baton_common.records import StepTask, StoryPublished
from baton_common.service import configure_logging
from baton_common.settings import TopicSettings
from baton_common.state import RunState
from baton_common.story import Story, parse_story
from baton_common.topics import provision_topics
from baton_scheduler.decide import Context, decide
from baton_scheduler.engine import Engine
from baton_scheduler.journal import journal
from baton_scheduler.recovery import rebuild_partition
from baton_scheduler.snapshot import load_snapshot, snapshot_records
from baton_scheduler.store import compact

STORY_TEXT = """
id: bench-fanout
version: 1
trigger: {webhook: {path: bench}}
steps:
  fetch: {action: http, with: {url: "http://x/{{ event.n }}"}}
  a: {needs: [fetch], action: http, with: {url: "http://a"}}
  b: {needs: [fetch], action: http, with: {url: "http://b"}}
  c: {needs: [fetch], action: http, with: {url: "http://c"}}
  d: {needs: [fetch], action: http, with: {url: "http://d"}}
  join: {needs: [a, b, c, d], action: http, with: {url: "http://j"}}
  act: {needs: [join], action: http, with: {url: "http://act"}}
  close: {needs: [act], action: http, with: {url: "http://close"}}
"""
STORY = parse_story(STORY_TEXT)
COMMANDS_PER_RUN = 1 + len(STORY.steps)  # StartRun + one CompleteStep per step
EVENTS_PER_RUN = 2 + 2 * len(STORY.steps)  # started, dispatched+succeeded each, succeeded
RECORDS_PER_RUN = EVENTS_PER_RUN + len(STORY.steps)  # plus one task record per step


def topics_for(namespace: str, partitions: int) -> TopicSettings:
    return TopicSettings(
        stories=f"{namespace}.baton.stories",
        ingest=f"{namespace}.baton.ingest",
        commands=f"{namespace}.baton.commands",
        runs=f"{namespace}.baton.runs",
        tasks_prefix=f"{namespace}.baton.tasks.",
        approvals=f"{namespace}.baton.tasks.approvals",
        dlq=f"{namespace}.baton.dlq",
        snapshots=f"{namespace}.baton.snapshots",
        partitions=partitions,
        ingest_partitions=1,
    )


def command_envelope(command: StartRun | CompleteStep, traceparent: str | None) -> Envelope:
    return to_envelope(
        command,
        id=str(uuid.uuid4()),
        source="bench",
        time=datetime.now(UTC),
        subject=command.run_id,
        traceparent=traceparent,
    )


def new_traceparent() -> str:
    """A sampled W3C traceparent, as ingest's webhook span gives each run."""
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROFILE = "/tmp/baton-bench-scheduler.prof"
THIS_FILE = os.path.abspath(__file__)


async def start_scheduler_process(
    bootstrap: str,
    topics: TopicSettings,
    namespace: str,
    fetch_max_wait_ms: int,
    profile: bool,
    max_batch: int,
) -> tuple[subprocess.Popen[bytes], str]:
    """The real scheduler service as its own process, on this bench's topics, and the
    URL of its HTTP app."""
    from baton_cli.kafka_ops import publish_stories

    await publish_stories(bootstrap, topics, [(STORY, STORY_TEXT)])
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_KAFKA_BOOTSTRAP": bootstrap,
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_SCHEDULER_HTTP_PORT": str(port),
        "BATON_SCHEDULER_GROUP_ID": f"{namespace}-s",
        "BATON_SCHEDULER_TRANSACTIONAL_ID": f"{namespace}-s-0",
        "BATON_SCHEDULER_FETCH_MAX_WAIT_MS": str(fetch_max_wait_ms),
        "BATON_SCHEDULER_MAX_BATCH": str(max_batch),
        **{
            f"BATON_TOPICS__{name.upper()}": str(value)
            for name, value in topics.model_dump().items()
            if isinstance(value, str | int) and not isinstance(value, bool)
        },
    }
    profiler = ["-m", "cProfile", "-o", PROFILE] if profile else []
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, *profiler, "-m", "baton_scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: ASYNC210
                if answer.status == 200:
                    return process, f"http://127.0.0.1:{port}"
        except OSError:
            pass
        await asyncio.sleep(0.25)
    process.kill()
    raise RuntimeError("the scheduler process did not become ready")


class Harness:
    """Scheduler engine (in this process, or the service as its own process), fake
    executors and an observer of baton.runs."""

    def __init__(
        self,
        bootstrap: str,
        topics: TopicSettings,
        namespace: str,
        fetch_max_wait_ms: int,
        *,
        separate: bool,
        profile: bool,
        max_batch: int = 200,
    ) -> None:
        self.max_batch = max_batch
        self.separate = separate
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.scheduler_url: str | None = None
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.bootstrap = bootstrap
        self.topics = topics
        self.namespace = namespace
        self.succeeded: set[str] = set()
        self.acked: dict[str, float] = {}  # CompleteStep id -> when Kafka acknowledged it
        self.latencies: list[float] = []
        self.measure = False
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        b = self.bootstrap
        catalog = StoryCatalog()
        catalog.add(StoryPublished(story=STORY, source=STORY_TEXT))
        wait = self.fetch_max_wait_ms
        self.consumer = make_consumer(
            b, group_id=f"{self.namespace}-s", client_id="bench-s", fetch_max_wait_ms=wait
        )
        self.producer = make_producer(
            b, client_id="bench-s", transactional_id=f"{self.namespace}-inline-0", linger_ms=0
        )
        self.recovery = make_consumer(
            b, group_id=None, client_id="bench-r", fetch_max_wait_ms=self.fetch_max_wait_ms
        )
        self.driver = make_producer(b, client_id="bench-driver")
        self.executor_in = make_consumer(
            b,
            self.topics.task_topic("default"),
            group_id=None,
            client_id="bench-x",
            fetch_max_wait_ms=wait,
        )
        self.observer = make_consumer(
            b, self.topics.runs, group_id=None, client_id="bench-o", fetch_max_wait_ms=wait
        )
        for client in (self.producer, self.recovery, self.driver, self.executor_in, self.observer):
            await client.start()
        self.engine = Engine(
            consumer=self.consumer,
            producer=self.producer,
            recovery_consumer=self.recovery,
            catalog=catalog,
            topics=self.topics,
            group_id=f"{self.namespace}-s",
            timer_producer=self.driver,
            max_batch=self.max_batch,
        )
        self.tasks = [
            asyncio.create_task(self._execute()),
            asyncio.create_task(self._observe()),
        ]
        if self.separate:
            self.process, self.scheduler_url = await start_scheduler_process(
                b,
                self.topics,
                self.namespace,
                self.fetch_max_wait_ms,
                self.profile,
                self.max_batch,
            )
            return
        self.engine.subscribe()
        await self.consumer.start()
        self.tasks.append(asyncio.create_task(self.engine.run()))
        while not self.engine.assigned:  # noqa: ASYNC110 - the engine exposes no event
            await asyncio.sleep(0.1)

    async def scrape(self) -> Scrape | None:
        """The scheduler process's metrics (None for the inline scheduler)."""
        return await scrape(self.scheduler_url) if self.scheduler_url else None

    async def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGINT)  # lets cProfile write its file
            self.process.wait(30)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in (
            self.consumer,
            self.producer,
            self.recovery,
            self.driver,
            self.executor_in,
            self.observer,
        ):
            await client.stop()

    async def start_runs(self, count: int, *, per_second: float | None = None) -> list[str]:
        run_ids = []
        began = time.perf_counter()
        pending = []
        for n in range(count):
            run_id = str(uuid.uuid4())
            run_ids.append(run_id)
            command = StartRun(run_id=run_id, story_id=STORY.id, trigger={"n": n})
            envelope = command_envelope(command, new_traceparent())
            record = outbound(self.topics.commands, run_id, envelope)
            pending.append(
                await self.driver.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
            )
            if per_second is not None:
                delay = began + (n + 1) / per_second - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.gather(*pending)
        return run_ids

    async def wait_done(self, run_ids: list[str], within: float) -> None:
        deadline = time.perf_counter() + within
        while not self.succeeded.issuperset(run_ids):
            if time.perf_counter() > deadline:
                missing = len(set(run_ids) - self.succeeded)
                raise TimeoutError(f"{missing} runs not finished within {within}s")
            await asyncio.sleep(0.01)

    async def _execute(self) -> None:
        """Fake executors: every task is answered at once with CompleteStep."""
        producer = self.driver
        while True:
            batches = await self.executor_in.getmany(timeout_ms=100, max_records=500)
            sent: list[tuple[str, asyncio.Future[object]]] = []
            for records in batches.values():
                for record in records:
                    received = decode_record(record.value, record.headers)
                    task = StepTask.model_validate(received.data)
                    command = CompleteStep(
                        run_id=task.run_id,
                        step=task.step,
                        attempt_id=task.attempt_id,
                        output={"ok": True},
                    )
                    # the result continues the task's trace, as the executor's does
                    envelope = command_envelope(command, received.traceparent)
                    out = outbound(self.topics.commands, task.run_id, envelope)
                    future = await producer.send(
                        out.topic, out.value, key=out.key, headers=out.headers
                    )
                    future.add_done_callback(
                        lambda _f, cid=envelope.id: self.acked.__setitem__(cid, time.perf_counter())
                    )
                    sent.append((envelope.id, future))
            if sent:
                await asyncio.gather(*(f for _, f in sent))

    async def _observe(self) -> None:
        while True:
            batches = await self.observer.getmany(timeout_ms=100, max_records=1000)
            seen = time.perf_counter()
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    kind = headers.get("ce_type", b"").decode()
                    if kind == "baton.run.succeeded.v1":
                        self.succeeded.add(headers["ce_subject"].decode())
                    elif kind == "baton.step.dispatched.v1" and self.measure:
                        cause = headers.get("ce_causationid", b"").decode()
                        if cause in self.acked:
                            self.latencies.append(seen - self.acked[cause])


def cpu_seconds(process: subprocess.Popen[bytes] | None) -> tuple[float, float]:
    """CPU seconds (user + system) the process has used so far, in all its threads and in
    its main thread (the event loop); this process's when None."""
    if process is None:
        return time.process_time(), time.thread_time()
    pid = process.pid
    return figures.cpu_seconds(pid), figures.cpu_seconds(pid, thread=pid)


async def throughput(harness: Harness, runs: int) -> float:
    began = time.perf_counter()
    cpu_began = cpu_seconds(harness.process)
    run_ids = await harness.start_runs(runs)
    await harness.wait_done(run_ids, within=300)
    elapsed = time.perf_counter() - began
    cpu_ended = cpu_seconds(harness.process)
    cpu, loop_cpu = (end - began for end, began in zip(cpu_ended, cpu_began, strict=True))
    print(f"throughput: {runs} runs of {len(STORY.steps)} steps (4-way fan-out) in {elapsed:.2f}s")
    print(f"  commands/s:    {runs * COMMANDS_PER_RUN / elapsed:8.0f}")
    print(f"  run events/s:  {runs * EVENTS_PER_RUN / elapsed:8.0f}")
    print(f"  log records/s: {runs * RECORDS_PER_RUN / elapsed:8.0f}  (events + task records)")
    print(f"  runs/s:        {runs / elapsed:8.1f}")
    where = "scheduler process" if harness.process is not None else "bench process"
    per = 1000 / (runs * COMMANDS_PER_RUN)
    print(
        f"  CPU ms/command: {per * cpu:7.3f}  ({where}; event loop thread {per * loop_cpu:.3f},"
        f" other threads {per * (cpu - loop_cpu):.3f})"
    )
    return runs / elapsed


async def profiled(harness: Harness, runs: int) -> None:
    profile = cProfile.Profile()
    profile.enable()
    run_ids = await harness.start_runs(runs)
    await harness.wait_done(run_ids, within=300)
    profile.disable()
    print(f"profile of {runs} more runs (this process), by own time:")
    print_profile(pstats.Stats(profile))


def print_profile(stats: pstats.Stats) -> None:
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(18)
    lines = text.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in lines[start : start + 19]:
        print("   ", line[:150])


async def latency(
    harness: Harness,
    run_rate: float,
    seconds: float,
    observer: subprocess.Popen[bytes],
    dump: Path | None = None,
) -> None:
    harness.latencies.clear()
    harness.acked.clear()
    gc.collect()
    gc.freeze()
    assert observer.stdin is not None
    assert observer.stdout is not None
    observer.stdin.write(b"measure\n")
    observer.stdin.flush()
    if (await asyncio.to_thread(observer.stdout.readline)).strip() != b"measuring":
        raise RuntimeError("the observer process did not begin measuring")
    harness.measure = True
    count = max(int(run_rate * seconds), 10)
    run_ids = await harness.start_runs(count, per_second=run_rate)
    await harness.wait_done(run_ids, within=300)
    harness.measure = False
    seen = await stop_observer(observer)
    label = f"latency at {run_rate:.1f} runs/s ({run_rate * RECORDS_PER_RUN:.0f} records/s)"
    acked = harness.acked
    samples = [stamp - acked[cause] for cause, stamp in seen if cause in acked]
    print_latencies(f"{label}, observer process", samples)
    if dump is not None:
        dump_samples(dump, samples)
    print_latencies("  the same, observed in the bench's own event loop", harness.latencies)


def dump_samples(path: Path, latencies: list[float]) -> None:
    """Write ``latencies`` (seconds) to ``path``, one per line in milliseconds, in the
    order they were observed."""
    path.write_text("".join(f"{s * 1000:.3f}\n" for s in latencies), encoding="utf-8")
    print(f"  {len(latencies)} samples (ms, in the order observed) written to {path}")


def writable_file(value: str) -> Path:
    """``--dump-samples``: a file path whose directory exists, checked before any phase
    runs so a typo does not cost a whole run."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a directory, not a file")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{value} is not writable")
    return path


def print_latencies(label: str, latencies: list[float]) -> None:
    lat = sorted(latencies)
    if not lat:
        print(f"{label}: no samples")
        return
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(
        f"{label}, {len(lat)} samples: CompleteStep acked -> next StepDispatched readable: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000:.1f} ms"
    )


async def start_observer(bootstrap: str, runs_topic: str) -> subprocess.Popen[bytes]:
    """The latency phase's observer of ``baton.runs`` as a process of its own, so its
    stamps do not wait for this process's event loop, which also runs the fake executors
    and the driver (ADR 0160). Started before the throughput phase (so its start-up is
    over when the latency phase begins), it reads nothing until told to measure."""
    observer = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, THIS_FILE, "--observe", runs_topic],
        env={**os.environ, "BATON_KAFKA_BOOTSTRAP": bootstrap},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert observer.stdout is not None
    ready = await asyncio.to_thread(observer.stdout.readline)
    if ready.strip() != b"ready":
        observer.kill()
        raise RuntimeError("the observer process did not start")
    return observer


async def stop_observer(observer: subprocess.Popen[bytes]) -> list[tuple[str, float]]:
    """Each StepDispatched the observer read: its causation id and when it was fetched."""
    assert observer.stdin is not None
    assert observer.stdout is not None
    observer.stdin.close()  # the observer's signal to print what it saw and end
    text = await asyncio.to_thread(observer.stdout.read)
    await asyncio.to_thread(observer.wait, 30)
    pairs = (line.split() for line in text.decode().splitlines())
    return [(cause, float(stamp)) for cause, stamp in pairs]


async def observe(bootstrap: str, runs_topic: str) -> None:
    """The observer process (``--observe TOPIC``): idle (its partitions paused) until a
    ``measure`` line arrives on its standard input; then reads ``read_committed`` from the
    end of ``runs_topic``, answers ``measuring``, stamps each StepDispatched with
    ``time.perf_counter()`` when its fetch returns (``CLOCK_MONOTONIC`` on Linux: the bench
    process's clock too), and prints one line per record, its causation id and the stamp,
    when its standard input closes."""
    consumer = make_consumer(
        bootstrap, runs_topic, group_id=None, client_id="bench-observer", fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=50)
        consumer.pause(*consumer.assignment())  # nothing read in the throughput phase
        stop = asyncio.Event()
        measure = asyncio.Event()
        loop = asyncio.get_running_loop()

        def closed() -> None:
            line = os.read(sys.stdin.fileno(), 64)
            if line:
                measure.set()
            else:
                stop.set()

        loop.add_reader(sys.stdin.fileno(), closed)
        print("ready", flush=True)
        seen: list[str] = []
        measuring = False
        while not stop.is_set():
            if measure.is_set() and not measuring:
                await consumer.seek_to_end()
                for tp in consumer.assignment():
                    await consumer.position(tp)  # the end, resolved before the phase begins
                consumer.resume(*consumer.assignment())
                measuring = True
                print("measuring", flush=True)
            batches = await consumer.getmany(timeout_ms=50, max_records=1000)
            stamp = time.perf_counter()
            if not measuring:
                continue
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_type") == b"baton.step.dispatched.v1":
                        cause = headers.get("ce_causationid", b"-").decode()
                        seen.append(f"{cause} {stamp!r}\n")
        sys.stdout.write("".join(seen))
        sys.stdout.flush()
    finally:
        await consumer.stop()


async def write_runs(
    bootstrap: str, topics: TopicSettings, story: Story, finished: int, waiting: int
) -> None:
    """Append runs' events to partition 0 of ``topics.runs``, made by the real decider."""
    producer: AIOKafkaProducer = make_producer(bootstrap, client_id="bench-rec")
    await producer.start()
    futures = []
    now = datetime.now(UTC)
    for n in range(finished + waiting):
        run_id = str(uuid.uuid4())
        state: RunState | None = None
        commands: list[StartRun | CompleteStep] = [
            StartRun(run_id=run_id, story_id="rec", trigger={"n": n})
        ]
        if n < finished:
            attempt = ids.attempt_id(run_id, "one", 1)
            commands.append(CompleteStep(run_id=run_id, step="one", attempt_id=attempt))
        for command in commands:
            envelope = command_envelope(command, None)
            decision = decide(state, command, story, Context(now, envelope.id, 1))
            entry = journal(
                {state.run_id: state} if state else {}, decision.events, envelope, now, topics
            )
            state = entry.states[run_id]
            for event in entry.events:
                out = outbound(topics.runs, run_id, event, partition=0)
                futures.append(
                    await producer.send(
                        out.topic, out.value, key=out.key, headers=out.headers, partition=0
                    )
                )
        if len(futures) > 5000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    await producer.stop()


async def recovery(bootstrap: str, namespace: str, finished: int, waiting: int) -> None:
    topics = topics_for(f"{namespace}-rec", 1)
    await provision_topics(bootstrap, topics)
    story = parse_story(
        "id: rec\nversion: 1\ntrigger: {webhook: {path: r}}\n"
        "steps:\n  one: {action: http, with: {url: 'http://x/{{ event.n }}'}}\n"
    )
    began = time.perf_counter()
    await write_runs(bootstrap, topics, story, finished, waiting)
    print(
        f"recovery: wrote {finished} finished + {waiting} waiting runs to one partition "
        f"in {time.perf_counter() - began:.1f}s"
    )
    consumer: AIOKafkaConsumer = make_consumer(
        bootstrap, group_id=None, client_id="bench-rec-c", fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        began = time.perf_counter()
        full = await rebuild_partition(consumer, topics.runs, 0)
        elapsed = time.perf_counter() - began
        print(
            f"recovery without snapshot: replayed {full.replayed} events into "
            f"{len(full.states)} runs in {elapsed:.2f}s ({full.replayed / elapsed:.0f} events/s)"
        )
        # a snapshot covering the log so far, written as the engine writes it (one
        # transaction), then a tail of 500 more runs' events after it
        snapshotter = make_producer(
            bootstrap, client_id="bench-snap", transactional_id=f"{namespace}-snap"
        )
        await snapshotter.start()
        began = time.perf_counter()
        async with snapshotter.transaction():
            records = snapshot_records(
                snapshot_topic=topics.snapshots,
                runs_topic=topics.runs,
                partition=0,
                runs_offset=full.end_offset,
                states=[compact(s) for _, s in full.states.values()],  # as the engine
                snapshot_id=f"bench:{full.end_offset}",
                time=datetime.now(UTC),
            )
            pending = [
                await snapshotter.send(
                    r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in records
            ]
            await asyncio.gather(*pending)
        await snapshotter.stop()
        print(
            f"snapshot: {len(full.states)} runs in {len(records) - 1} chunks written in "
            f"{time.perf_counter() - began:.2f}s"
        )
        await write_runs(bootstrap, topics, story, 500, 0)
        began = time.perf_counter()
        snapshot = await load_snapshot(consumer, topics.snapshots, topics.runs, 0)
        loaded = time.perf_counter() - began
        tail = await rebuild_partition(consumer, topics.runs, 0, snapshot)
        elapsed = time.perf_counter() - began
        print(
            f"recovery with snapshot: snapshot loaded in {loaded:.2f}s, then {tail.replayed} "
            f"tail events; {len(tail.states)} runs in {elapsed:.2f}s total"
        )
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--profile-scheduler",
        action="store_true",
        help="run the scheduler process under cProfile (slower) and print where time goes",
    )
    parser.add_argument(
        "--scheduler",
        choices=["process", "inline"],
        default="process",
        help="the scheduler service as its own process (default), or in the bench's loop",
    )
    parser.add_argument(
        "--fetch-max-wait-ms", type=int, default=20, help="as the scheduler's setting"
    )
    parser.add_argument(
        "--max-batch", type=int, default=200, help="as the scheduler's setting (per transaction)"
    )
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="runs/s of the latency phase (default: half the measured throughput)",
    )
    parser.add_argument(
        "--dump-samples",
        type=writable_file,
        metavar="FILE",
        help="write the latency phase's samples (observer process, ms) to FILE, one per line",
    )
    parser.add_argument("--finished", type=int, default=20_000)
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--skip", choices=["engine", "recovery"], action="append", default=[])
    parser.add_argument("--observe", metavar="TOPIC", help=argparse.SUPPRESS)  # the observer
    args = parser.parse_args()
    configure_logging("bench", "WARNING")
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if args.observe:
        await observe(bootstrap, args.observe)
        return
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    try:
        await run_phases(args, bootstrap, namespace)
    finally:
        await drop_namespaces(bootstrap, [namespace, f"{namespace}-rec"])


async def run_phases(args: argparse.Namespace, bootstrap: str, namespace: str) -> None:
    if "engine" not in args.skip:
        topics = topics_for(namespace, args.partitions)
        await provision_topics(bootstrap, topics)
        harness = Harness(
            bootstrap,
            topics,
            namespace,
            args.fetch_max_wait_ms,
            separate=args.scheduler == "process",
            profile=args.profile_scheduler,
            max_batch=args.max_batch,
        )
        await harness.start()
        observer = await start_observer(bootstrap, topics.runs)
        try:
            await harness.start_runs(5)  # warm up connections and caches
            await asyncio.sleep(2)
            before = await harness.scrape()
            rate = await throughput(harness, args.runs)
            between = await harness.scrape()
            await latency(
                harness,
                args.latency_rate or rate / 2,
                args.latency_seconds,
                observer,
                args.dump_samples,
            )
            after = await harness.scrape()
            if before and between and after:
                print_stages("throughput phase", between.minus(before))
                print_stages("latency phase", after.minus(between))
            if not harness.separate:
                await profiled(harness, max(args.runs // 3, 10))
        finally:
            if observer.poll() is None:
                observer.kill()
            await harness.stop()
        if harness.separate and args.profile_scheduler:
            print("profile of the scheduler process over all phases, by own time:")
            print_profile(pstats.Stats(PROFILE))
    if "recovery" not in args.skip:
        await recovery(bootstrap, namespace, args.finished, args.waiting)


if __name__ == "__main__":
    asyncio.run(main())
