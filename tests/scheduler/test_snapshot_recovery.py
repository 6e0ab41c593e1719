"""Snapshots through the real Kafka: written in the command transactions, used by recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from scheduler_engine import namespaced

from baton_common.catalog import StoryCatalog
from baton_common.commands import CompleteStep, StartRun
from baton_common.kafka import make_consumer, make_producer, outbound, to_envelope
from baton_common.records import StoryPublished
from baton_common.settings import TopicSettings
from baton_common.state import RunStatus
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics
from baton_scheduler.engine import Engine
from baton_scheduler.recovery import rebuild_partition
from baton_scheduler.snapshot import load_snapshot, snapshot_records
from baton_scheduler.store import compact

pytestmark = pytest.mark.integration

TEXT = "id: snap\nversion: 1\ntrigger: {webhook: {path: s}}\nsteps:\n  one: {action: http}\n"
STORY = parse_story(TEXT)


class Scheduler:
    def __init__(self, bootstrap: str, topics: TopicSettings, ns: str) -> None:
        self.bootstrap, self.topics, self.ns = bootstrap, topics, ns

    async def __aenter__(self) -> Engine:
        b = self.bootstrap
        catalog = StoryCatalog()
        catalog.add(StoryPublished(story=STORY, source=TEXT))
        self.consumer = make_consumer(b, group_id=f"{self.ns}-s", client_id="t-s")
        self.producer = make_producer(b, client_id="t-s", transactional_id=f"{self.ns}-s")
        self.recovery = make_consumer(b, group_id=None, client_id="t-r")
        for client in (self.producer, self.recovery):
            await client.start()
        self.engine = Engine(
            consumer=self.consumer,
            producer=self.producer,
            recovery_consumer=self.recovery,
            catalog=catalog,
            topics=self.topics,
            group_id=f"{self.ns}-s",
            snapshot_every=4,
        )
        self.engine.subscribe()
        await self.consumer.start()
        self.task = asyncio.create_task(self.engine.run())
        return self.engine

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for client in (self.consumer, self.producer, self.recovery):
            await client.stop()


@pytest.fixture
async def topics(kafka_bootstrap: str) -> TopicSettings:
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    return topics


async def send(
    bootstrap: str, topics: TopicSettings, commands: Sequence[StartRun | CompleteStep]
) -> None:
    producer = make_producer(bootstrap, client_id="t-driver")
    await producer.start()
    try:
        for command in commands:
            envelope = to_envelope(
                command, id=str(uuid.uuid4()), source="test", time=datetime.now(UTC)
            )
            await outbound(topics.commands, command.run_id, envelope).send(producer)
    finally:
        await producer.stop()


async def test_recovery_from_a_snapshot_equals_a_full_replay(
    kafka_bootstrap: str, topics: TopicSettings
) -> None:
    ns = topics.runs.split(".")[0]
    run_ids = [str(uuid.uuid4()) for _ in range(6)]
    async with Scheduler(kafka_bootstrap, topics, ns) as engine:
        await send(
            kafka_bootstrap,
            topics,
            [StartRun(run_id=r, story_id="snap", trigger={}) for r in run_ids],
        )

        async def all_dispatched() -> bool:
            return all((s := engine.store.get(r)) is not None and "one" in s.steps for r in run_ids)

        await eventually(all_dispatched, within=30, what="six runs dispatched")
        done = []
        for r in run_ids[:4]:
            state = engine.store.get(r)
            assert state is not None
            attempt = state.steps["one"].attempt_id
            assert attempt is not None
            done.append(CompleteStep(run_id=r, step="one", attempt_id=attempt))
        await send(kafka_bootstrap, topics, done)

        async def four_finished() -> bool:
            states = [engine.store.get(r) for r in run_ids[:4]]
            return all(s is not None and s.status is RunStatus.SUCCEEDED for s in states)

        await eventually(four_finished, within=30, what="four runs finished")
        expected = {r: engine.store.get(r) for r in run_ids}

    consumer = make_consumer(kafka_bootstrap, group_id=None, client_id="t-check")
    await consumer.start()
    try:
        snapshot = await load_snapshot(consumer, topics.snapshots, topics.runs, 0)
        assert snapshot is not None  # 10 commands with snapshot_every=4: at least one written
        assert 0 < snapshot.runs_offset
        full = await rebuild_partition(consumer, topics.runs, 0)
        tail = await rebuild_partition(consumer, topics.runs, 0, snapshot)
        assert tail.replayed < full.replayed
        # the engine keeps finished runs compact; a replay gives them whole
        assert {r: compact(s) for r, (_, s) in tail.states.items()} == expected
        assert {r: compact(s) for r, (_, s) in full.states.items()} == expected
        assert all(not expected[r].steps for r in run_ids[:4])  # type: ignore[union-attr]
        assert all(expected[r].steps for r in run_ids[4:])  # type: ignore[union-attr]
    finally:
        await consumer.stop()


async def test_an_incomplete_snapshot_is_not_used(
    kafka_bootstrap: str, topics: TopicSettings
) -> None:
    records = snapshot_records(
        snapshot_topic=topics.snapshots,
        runs_topic=topics.runs,
        partition=0,
        runs_offset=7,
        states=[],
        snapshot_id="s-1",
        time=datetime.now(UTC),
    )
    producer = make_producer(kafka_bootstrap, client_id="t-snap")
    await producer.start()
    try:
        await records[-1].send(producer)  # the manifest without its chunk
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_bootstrap, group_id=None, client_id="t-check")
    await consumer.start()
    try:
        assert await load_snapshot(consumer, topics.snapshots, topics.runs, 0) is None
        assert await load_snapshot(consumer, topics.snapshots, topics.runs, 1) is None
    finally:
        await consumer.stop()
