"""Decision-to-next-step latency of an approval gate, on the real Kafka and PostgreSQL.

Starts the scheduler and approvals as processes in a fresh topic namespace, opens N gates
(a story: approval `review`, then an `act` step), then decides them one at a time through
`POST /approvals/{id}/decision` and measures, per gate, the time from sending the decision
until the scheduler's `act` task for that run appears on `baton.tasks.default` (the next
step dispatched), and the time until the 202. Prints percentiles; asserts nothing.

With ``--stages`` it also splits the path by reading both topics uncommitted: when the
`DecideApproval` command was appended (its CreateTime) and seen, when the scheduler
produced the `act` task (CreateTime, before its transaction commits), when that record was
readable uncommitted, and when it became readable committed.

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 \
    BATON_DATABASE_URL=postgresql://baton:baton@127.0.0.1:55432/baton \
    .venv/bin/python bench/approvals.py [--gates 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from aiokafka import AIOKafkaConsumer
from figures import percentile
from namespaces import drop_namespaces
from platform_kit import build_platform, topic_env
from stages import print_stages, scrape

from baton_cli.kafka_ops import publish_stories
from baton_common.commands import StartRun
from baton_common.envelope import decode_record
from baton_common.kafka import make_consumer, make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.topics import provision_topics

STORY = """
id: bench-gate
version: 1
trigger:
  webhook: {path: bench-gate}
steps:
  review:
    approval: {approvers: ["group:secops-oncall"]}
  act:
    needs: [review]
    action: http
    with: {method: POST, url: "http://127.0.0.1:9/unused"}
"""
ALICE = {"Authorization": "Bearer tok-alice"}


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<28} n={len(ms)}  p50={percentile(ms, 50):.1f}ms  p95={percentile(ms, 95):.1f}ms"
        f"  p99={percentile(ms, 99):.1f}ms  max={max(ms):.1f}ms  mean={statistics.mean(ms):.1f}ms"
    )


@dataclass
class Stamps:
    """Wall-clock seconds per run id of each point on the decision path."""

    post: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    command_created: dict[str, float] = field(default_factory=dict)
    command_seen: dict[str, float] = field(default_factory=dict)
    task_created: dict[str, float] = field(default_factory=dict)
    task_seen_uncommitted: dict[str, float] = field(default_factory=dict)
    task_seen: dict[str, float] = field(default_factory=dict)

    def report(self) -> None:
        pairs = [
            ("POST → command appended", self.post, self.command_created),
            ("command appended → 202", self.command_created, self.accepted),
            ("command appended → seen", self.command_created, self.command_seen),
            ("command appended → task sent", self.command_created, self.task_created),
            ("task sent → readable uncommitted", self.task_created, self.task_seen_uncommitted),
            ("task sent → readable committed", self.task_created, self.task_seen),
            ("202 → task readable", self.accepted, self.task_seen),
        ]
        for name, start, end in pairs:
            both = [end[r] - start[r] for r in start if r in end]
            if both:
                report(name, both)


async def watch_uncommitted(
    bootstrap: str, topics: TopicSettings, stamps: Stamps, ready: asyncio.Event
) -> None:
    """Follows commands and tasks read_uncommitted: when records were appended."""
    consumer = AIOKafkaConsumer(
        topics.commands,
        topics.task_topic("default"),
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_uncommitted",
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=50)
            if consumer.assignment():
                ready.set()
            seen = time.time()
            for tp, records in batches.items():
                for record in records:
                    headers = dict(record.headers)
                    kind = headers.get("ce_type", b"").decode()
                    run_id = (record.key or b"").decode()
                    if tp.topic == topics.commands and kind == "baton.approval.decide.v1":
                        stamps.command_created[run_id] = record.timestamp / 1000
                        stamps.command_seen[run_id] = seen
                    elif tp.topic != topics.commands:
                        data = decode_record(record.value, record.headers).data
                        if data.get("step") == "act":
                            run_id = str(data["run_id"])
                            stamps.task_created[run_id] = record.timestamp / 1000
                            stamps.task_seen_uncommitted[run_id] = seen
    finally:
        await consumer.stop()


async def main(gates: int, stages: bool) -> None:
    bootstrap = os.environ["BATON_KAFKA_BOOTSTRAP"]
    database_url = os.environ["BATON_DATABASE_URL"]
    platform = build_platform(bootstrap, database_url, Path(tempfile.mkdtemp(prefix="bench-")))
    fields = {
        k.removeprefix("BATON_TOPICS__").lower(): v
        for k, v in topic_env(platform.namespace).items()
    }
    topics = TopicSettings.model_validate(fields)
    await provision_topics(bootstrap, topics)
    await publish_stories(bootstrap, topics, [(parse_story(STORY), STORY)])
    services = [platform.services["scheduler"], platform.services["approvals"]]
    for service in services:
        service.start()
    try:
        for service in services:
            await asyncio.to_thread(service.wait_ready)
        before = await scrape(platform.url("scheduler"))
        await measure(platform.url("approvals"), bootstrap, topics, gates, stages)
        after = await scrape(platform.url("scheduler"))
        print_stages(f"while deciding {gates} gates", after.minus(before))
    finally:
        for service in services:
            service.stop()
        await drop_namespaces(bootstrap, [platform.namespace])


async def measure(
    approvals: str, bootstrap: str, topics: TopicSettings, gates: int, stages: bool
) -> None:
    runs = [str(uuid.uuid4()) for _ in range(gates)]
    producer = make_producer(bootstrap, client_id="bench")
    await producer.start()
    try:
        for run_id in runs:
            command = StartRun(run_id=run_id, story_id="bench-gate", trigger={})
            envelope = to_envelope(
                command,
                id=str(uuid.uuid4()),
                source="bench",
                time=datetime.now(UTC),
                subject=run_id,
            )
            await outbound(topics.commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=approvals, headers=ALICE, timeout=30) as client:
        deadline = time.monotonic() + 120
        gate_of: dict[str, str] = {}
        while len(gate_of) < gates:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(gate_of)} of {gates} gates opened")
            listed = await client.get("/approvals", params={"state": "pending", "limit": 500})
            gate_of = {g["run_id"]: g["gate_id"] for g in listed.json()["items"]}
            await asyncio.sleep(0.2)

        dispatched: dict[str, float] = {}
        arrived = asyncio.Event()
        consumer = make_consumer(
            bootstrap, topics.task_topic("default"), group_id=None, client_id="bench"
        )
        await consumer.start()

        assigned = asyncio.Event()

        async def watch() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=50)
                if consumer.assignment():
                    assigned.set()
                for records in batches.values():
                    for record in records:
                        data = decode_record(record.value, record.headers).data
                        if data.get("step") == "act":
                            dispatched[str(data["run_id"])] = time.perf_counter()
                            arrived.set()

        watcher = asyncio.create_task(watch())
        stamps = Stamps()
        uncommitted_ready = asyncio.Event()
        stage_watcher = asyncio.create_task(
            watch_uncommitted(bootstrap, topics, stamps, uncommitted_ready)
            if stages
            else asyncio.sleep(0)
        )
        try:
            await asyncio.wait_for(assigned.wait(), 30)
            if stages:
                await asyncio.wait_for(uncommitted_ready.wait(), 30)
                await asyncio.sleep(1)  # the latest offsets are resolved
            to_next_step: list[float] = []
            to_202: list[float] = []
            for run_id in runs:
                arrived.clear()
                stamps.post[run_id] = time.time()
                started = time.perf_counter()
                response = await client.post(
                    f"/approvals/{gate_of[run_id]}/decision", json={"decision": "approve"}
                )
                to_202.append(time.perf_counter() - started)
                stamps.accepted[run_id] = stamps.post[run_id] + to_202[-1]
                response.raise_for_status()
                while run_id not in dispatched:
                    await asyncio.wait_for(arrived.wait(), 30)
                    arrived.clear()
                to_next_step.append(dispatched[run_id] - started)
                stamps.task_seen[run_id] = stamps.post[run_id] + to_next_step[-1]
            await asyncio.sleep(0.5)  # the uncommitted watcher catches up
        finally:
            watcher.cancel()
            stage_watcher.cancel()
            await asyncio.wait({watcher, stage_watcher})
            await consumer.stop()
    report("decision → 202 accepted", to_202)
    report("decision → next step task", to_next_step)
    if stages:
        stamps.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=100)
    parser.add_argument("--stages", action="store_true", help="split the path into stages")
    args = parser.parse_args()
    asyncio.run(main(args.gates, args.stages))
