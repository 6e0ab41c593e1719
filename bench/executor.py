"""HTTP steps per second through one executor process, against a local fake at 1 ms.

What it measures: ``count`` step tasks are put on a fresh ``baton.tasks.default`` topic,
then one ``baton-executor`` process (the real one, as a subprocess) runs them: each one a
POST to a local upstream that answers after ``--latency-ms``, each outcome published as a
``CompleteStep`` to ``baton.commands`` and acknowledged by Kafka (``acks=all``). The
figure is completed steps / (last command time - first command time), read from Kafka.

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/executor.py --count 5000

The upstream runs in its own process (a minimal asyncio HTTP/1.1 server), so it does not
share the executor's event loop. Goal (issue #5): 2,000 steps/s.

It also prints the executor's CPU seconds per step (user + system time of the executor
process from ready to the last command, from ``/proc``), the figure to compare while the
machine is shared, and the load side's CPU (the upstream's, the command reader's and the
task loader's): on the same cores, it must not be what limits the executor.
``--profile out.prof`` runs the executor under cProfile (stats written when it stops;
read them with ``python -m pstats out.prof``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from figures import cpu_seconds
from namespaces import drop_namespaces

from baton_common import ids
from baton_common.kafka import make_consumer, make_producer, outbound, to_envelope
from baton_common.records import StepTask
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
    b'Connection: keep-alive\r\n\r\n{"ok":true}'
)


class _Upstream(asyncio.Protocol):
    """Answers every request on a keep-alive connection after ``latency`` seconds."""

    latency = 0.001

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            asyncio.get_running_loop().call_later(self.latency, self._answer)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE)


async def _serve(port: int, latency: float) -> None:
    _Upstream.latency = latency
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _topics(namespace: str) -> TopicSettings:
    return TopicSettings(
        stories=f"{namespace}.baton.stories",
        ingest=f"{namespace}.baton.ingest",
        commands=f"{namespace}.baton.commands",
        runs=f"{namespace}.baton.runs",
        approvals=f"{namespace}.baton.tasks.approvals",
        dlq=f"{namespace}.baton.dlq",
        tasks_prefix=f"{namespace}.baton.tasks.",
        partitions=6,
    )


async def _load(bootstrap: str, topics: TopicSettings, count: int, url: str) -> None:
    producer = make_producer(bootstrap, client_id="bench-loader")
    await producer.start()
    try:
        now = datetime.now(UTC)
        sends = []
        for i in range(count):
            run_id = str(uuid.uuid4())
            task = StepTask(
                run_id=run_id,
                story_id="bench",
                story_version=1,
                step="call",
                attempt=1,
                attempt_id=ids.attempt_id(run_id, "call", 1),
                action="http",
                input={"url": url, "method": "POST", "json": {"i": i}},
            )
            record = outbound(
                topics.task_topic("default"),
                run_id,
                to_envelope(task, id=str(uuid.uuid4()), source="bench", time=now, subject=run_id),
            )
            sends.append(
                await producer.send(
                    record.topic, record.value, key=record.key, headers=record.headers
                )
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _collect(bootstrap: str, topics: TopicSettings, count: int, within: float) -> list[float]:
    """Kafka timestamps (seconds) of the first ``count`` commands."""
    consumer = make_consumer(bootstrap, topics.commands, group_id=None, client_id="bench-reader")
    await consumer.start()
    stamps: list[float] = []
    deadline = time.monotonic() + within
    try:
        while len(stamps) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                stamps.extend(r.timestamp / 1000 for r in records)
    finally:
        await consumer.stop()
    return stamps


def _executor_command(profile: str | None) -> list[str]:
    if profile is None:
        return [sys.executable, "-m", "baton_executor"]
    # uvicorn re-raises SIGTERM after its shutdown, through the handler it found: make
    # that handler end the interpreter normally, so the stats get written. A path ending
    # in .txt gets pyinstrument's sampled call tree (if installed), else cProfile stats.
    if profile.endswith(".txt"):
        start = (
            "import pyinstrument\n"
            "p = pyinstrument.Profiler(interval=0.0005, async_mode='disabled')\np.start()\n"
        )
        stop = f"p.stop()\n    open({profile!r}, 'w').write(p.output_text(show_all=False))"
    else:
        # CPU clock: time spent waiting (for the upstream, for Kafka) is not the cost.
        start = "import cProfile, time\np = cProfile.Profile(time.process_time)\np.enable()\n"
        stop = f"p.disable()\n    p.dump_stats({profile!r})"
    code = (
        "import signal, sys, baton_executor.main as m\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"{start}try:\n    m.run()\nfinally:\n    {stop}\n"
    )
    return [sys.executable, "-c", code]


def _wait_ready(url: str, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the executor exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the executor did not become ready")


def _bench(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    topics = _topics(namespace)
    asyncio.run(provision_topics(bootstrap, topics))
    upstream_port, executor_port = _free_port(), _free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(upstream_port),
            "--latency-ms",
            str(args.latency_ms),
        ],
        start_new_session=True,
    )
    log = Path(args.log)
    executor: subprocess.Popen[bytes] | None = None
    try:
        loader_started = time.process_time()
        asyncio.run(
            _load(bootstrap, topics, args.count, f"http://127.0.0.1:{upstream_port}/enrich")
        )
        loader_cpu = time.process_time() - loader_started
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
            "BATON_KAFKA_BOOTSTRAP": bootstrap,
            "BATON_LOG_LEVEL": "WARNING",
            "BATON_EXECUTOR_HTTP_PORT": str(executor_port),
            "BATON_EXECUTOR_GROUP_ID": f"{namespace}-executor",
            "BATON_EXECUTOR_CONCURRENCY": str(args.concurrency),
            "BATON_EXECUTOR_PER_HOST_CONCURRENCY": str(args.concurrency),
            "BATON_EXECUTOR_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
            **{
                f"BATON_TOPICS__{k.upper()}": str(v)
                for k, v in topics.model_dump().items()
                if k != "task_queues"
            },
        }
        with log.open("wb") as out:
            executor = subprocess.Popen(
                _executor_command(args.profile),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        _wait_ready(f"http://127.0.0.1:{executor_port}", executor)
        cpu_ready, upstream_ready = cpu_seconds(executor.pid), cpu_seconds(upstream.pid)
        reader_ready = time.process_time()
        stamps = asyncio.run(_collect(bootstrap, topics, args.count, within=args.timeout))
        cpu = cpu_seconds(executor.pid) - cpu_ready
        upstream_cpu = cpu_seconds(upstream.pid) - upstream_ready
        reader_cpu = time.process_time() - reader_ready
        wall = time.monotonic() - started
    finally:
        for process in (executor, upstream):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (executor, upstream):
            if process is not None:
                process.wait(300 if args.profile else 30)  # writing a profile takes a while
        asyncio.run(drop_namespaces(bootstrap, [namespace]))
    if len(stamps) < args.count:
        print(f"only {len(stamps)} of {args.count} steps completed within {args.timeout}s")
        sys.exit(1)
    stamps.sort()
    span = stamps[-1] - stamps[0]
    print(
        f"steps: {args.count}  executor concurrency: {args.concurrency}  "
        f"upstream latency: {args.latency_ms} ms"
    )
    print(
        f"first to last command: {span:.2f}s  ->  {args.count / span:,.0f} steps/s (goal 2,000/s)"
    )
    print(f"wall time incl. executor start-up: {wall:.2f}s")
    print(
        f"executor CPU from ready to last command: {cpu:.2f}s  ->  "
        f"{cpu / args.count * 1e6:,.0f} µs per step"
    )
    # The load side shares the machine's cores: its CPU says whether it could be the limit.
    print(
        f"load side CPU: upstream {upstream_cpu:.2f}s ({upstream_cpu / args.count * 1e6:,.0f} µs "
        f"per step), command reader {reader_cpu:.2f}s, task loader (before the run) "
        f"{loader_cpu:.2f}s; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--log", default="/tmp/baton-bench-executor.log")
    parser.add_argument(
        "--profile",
        help="profile the executor: cProfile stats, or pyinstrument text for *.txt",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.latency_ms / 1000))
        return
    _bench(args)


if __name__ == "__main__":
    main()
