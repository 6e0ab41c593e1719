"""The scheduler's counters count what was committed, through the real Kafka (ADR 0183): a
batch whose transaction aborts is decided again and counted once; a batch whose producer
is fenced (another instance took the transactional id) is not counted by this one."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, ProducerFenced
from prometheus_client import REGISTRY
from scheduler_engine import engine_for, namespaced, run_until, start_runs

from baton_common.kafka import (
    ConsumedRecord,
    OutboundRecord,
    make_consumer,
    make_producer,
    read_to_end,
)
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_scheduler.engine import Engine, Staged

pytestmark = pytest.mark.integration

RUNS = 3


def story(story_id: str) -> str:
    return (
        f"id: {story_id}\nversion: 1\ntrigger: {{webhook: {{path: t}}}}\n"
        "steps:\n  one: {action: http}\n"
    )


class InterruptedOnce(Engine):
    """Runs ``interrupt`` once, right after deciding the ``at``-th command: its batch has
    been decided (and, before ADR 0183, counted) but not committed."""

    at = RUNS
    handled = 0
    interrupt: Callable[[], Awaitable[None]]

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        out = await super().handle(record, staged)
        self.handled += 1
        if self.handled == self.at:
            await self.interrupt()
        return out


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class Counts:
    """The counters one batch of StartRun commands for ``story_id`` moves."""

    def __init__(self, story_id: str) -> None:
        self._names = {
            "commands": (
                "baton_scheduler_commands_total",
                {"type": "baton.run.start.v1", "outcome": "accepted"},
            ),
            "latencies": ("baton_scheduler_command_latency_seconds_count", {}),
            "started": ("baton_runs_started_total", {"story": story_id}),
            "dispatched": ("baton_step_dispatches_total", {"story": story_id, "action": "http"}),
            "aborts": ("baton_scheduler_transaction_aborts_total", {}),
        }
        self._before = self._now()

    def _now(self) -> dict[str, float]:
        return {key: sample(name, labels) for key, (name, labels) in self._names.items()}

    def moved(self) -> dict[str, float]:
        now = self._now()
        return {key: now[key] - self._before[key] for key in now}


async def committed_events(bootstrap: str, topics: TopicSettings) -> Counter[str]:
    """The event types on ``baton.runs``, committed only."""
    consumer = make_consumer(bootstrap, topics.runs, group_id=None, client_id="t-check")
    await consumer.start()
    try:
        return Counter(
            [(dict(r.headers).get("ce_type") or b"?").decode() async for r in read_to_end(consumer)]
        )
    finally:
        await consumer.stop()


async def test_an_aborted_batch_decided_again_is_counted_once(kafka_bootstrap: str) -> None:
    story_id = f"counted{uuid.uuid4().hex[:8]}"
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    commands = TopicPartition(topics.commands, 0)
    engine, consumer, clients = await engine_for(
        kafka_bootstrap, topics, InterruptedOnce, story(story_id)
    )
    assert isinstance(engine, InterruptedOnce)

    async def lost_connection() -> None:
        raise KafkaConnectionError("injected: connection lost before the commit")

    engine.interrupt = lost_connection
    counts = Counts(story_id)
    try:
        await start_runs(kafka_bootstrap, topics, story_id, RUNS)

        async def offsets_committed() -> bool:
            return bool(await consumer.committed(commands) == RUNS)

        await run_until(engine, offsets_committed, "the batch decided again and committed")
    finally:
        for client in clients:
            await client.stop()
    events = await committed_events(kafka_bootstrap, topics)
    assert engine.handled > RUNS  # the aborted batch was decided again
    assert events["baton.run.started.v1"] == RUNS
    assert events["baton.step.dispatched.v1"] == RUNS
    assert counts.moved() == {
        "commands": RUNS,
        "latencies": RUNS,
        "started": events["baton.run.started.v1"],
        "dispatched": events["baton.step.dispatched.v1"],
        "aborts": 1,
    }


async def test_a_fenced_batch_is_not_counted(kafka_bootstrap: str) -> None:
    story_id = f"fenced{uuid.uuid4().hex[:8]}"
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    engine, _, clients = await engine_for(kafka_bootstrap, topics, InterruptedOnce, story(story_id))
    assert isinstance(engine, InterruptedOnce)
    # another instance starts with the same transactional id: the broker aborts this one's
    # open transaction and refuses its producer from then on
    successor = make_producer(kafka_bootstrap, client_id="t-s2", transactional_id=engine._group_id)
    engine.interrupt = successor.start
    counts = Counts(story_id)
    try:
        await start_runs(kafka_bootstrap, topics, story_id, RUNS)
        with pytest.raises(ProducerFenced):
            await asyncio.wait_for(engine.run(), 60)
    finally:
        await successor.stop()
        for client in clients:
            await client.stop()
    assert engine.handled == RUNS
    assert await committed_events(kafka_bootstrap, topics) == Counter()
    assert counts.moved() == {
        "commands": 0,
        "latencies": 0,
        "started": 0,
        "dispatched": 0,
        "aborts": 0,
    }
