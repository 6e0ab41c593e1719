"""Helpers for driving the scheduler's engine through the test broker: namespaced topics,
StartRun commands sent ahead, and the run ids committed on ``baton.runs``."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from baton_common.catalog import StoryCatalog
from baton_common.commands import StartRun
from baton_common.kafka import make_consumer, make_producer, outbound, read_to_end, to_envelope
from baton_common.records import StoryPublished
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_scheduler.engine import Engine

__all__ = [
    "catalog_of",
    "engine_clients",
    "engine_for",
    "namespaced",
    "run_started_counts",
    "run_until",
    "start_runs",
]


def namespaced(ns: str, partitions: int = 1) -> TopicSettings:
    names = ("stories", "ingest", "commands", "runs", "approvals", "dlq", "snapshots")
    fields: dict[str, object] = {n: f"{ns}.baton.{n}" for n in names}
    return TopicSettings.model_validate(
        {
            **fields,
            "tasks_prefix": f"{ns}.baton.tasks.",
            "partitions": partitions,
            "ingest_partitions": 1,
        }
    )


async def start_runs(bootstrap: str, topics: TopicSettings, story_id: str, count: int) -> list[str]:
    """Send ``count`` StartRun commands, each acknowledged before the next; their run ids."""
    run_ids = [str(uuid.uuid4()) for _ in range(count)]
    producer = make_producer(bootstrap, client_id="t-driver")
    await producer.start()
    try:
        for run_id in run_ids:
            command = StartRun(run_id=run_id, story_id=story_id, trigger={})
            envelope = to_envelope(
                command, id=str(uuid.uuid4()), source="t", time=datetime.now(UTC)
            )
            await outbound(topics.commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()
    return run_ids


async def run_started_counts(bootstrap: str, topics: TopicSettings) -> Counter[str]:
    """How many ``run.started`` events each run has on ``baton.runs`` (committed only)."""
    consumer = make_consumer(bootstrap, topics.runs, group_id=None, client_id="t-check")
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        async for record in read_to_end(consumer):
            kind = dict(record.headers).get("ce_type")
            if kind == b"baton.run.started.v1" and record.key is not None:
                counts[record.key.decode()] += 1
    finally:
        await consumer.stop()
    return counts


async def run_until(engine: Engine, done: Callable[[], Awaitable[bool]], what: str) -> None:
    """Run ``engine``'s command loop until ``done()`` holds (60 s at most), then stop it."""
    task = asyncio.create_task(engine.run())
    try:
        await eventually(done, within=60, what=what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def catalog_of(text: str) -> StoryCatalog:
    catalog = StoryCatalog()
    catalog.add(StoryPublished(story=parse_story(text), source=text))
    return catalog


async def engine_clients(
    bootstrap: str, group: str
) -> tuple[AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaConsumer]:
    """An engine's command consumer (not started: the engine subscribes it first), its
    transactional producer and its recovery consumer (both started)."""
    consumer = make_consumer(bootstrap, group_id=group, client_id="t-s")
    producer = make_producer(bootstrap, client_id="t-s", transactional_id=group)
    recovery = make_consumer(bootstrap, group_id=None, client_id="t-r")
    await producer.start()
    await recovery.start()
    return consumer, producer, recovery


async def engine_for(
    bootstrap: str,
    topics: TopicSettings,
    kind: type[Engine],
    text: str,
    *,
    max_batch: int = 200,
    snapshot_every: int = 0,
) -> tuple[Engine, AIOKafkaConsumer, list[AIOKafkaConsumer | AIOKafkaProducer]]:
    """An engine of class ``kind`` for the one story ``text``, subscribed and its consumer
    started. Returns the engine, its command consumer and every client to stop."""
    group = f"{topics.commands}-s"
    consumer, producer, recovery = await engine_clients(bootstrap, group)
    engine = kind(
        consumer=consumer,
        producer=producer,
        recovery_consumer=recovery,
        catalog=catalog_of(text),
        topics=topics,
        group_id=group,
        max_batch=max_batch,
        snapshot_every=snapshot_every,
    )
    engine.subscribe()
    await consumer.start()
    return engine, consumer, [consumer, producer, recovery]
