"""Commands fetched while a batch runs are held for the next batch (ADR 0180): they are
decided in the very next batch, and an aborted batch drops what is held past it, so every
command is still decided exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from scheduler_engine import (
    engine_for,
    namespaced,
    run_started_counts,
    run_until,
    start_runs,
)

from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord, make_consumer
from baton_common.topics import provision_topics
from baton_scheduler import engine as engine_module
from baton_scheduler.engine import Engine, Staged
from baton_scheduler.held import HeldCommands, reassigning
from baton_scheduler.produce import send_records

TEXT = "id: held\nversion: 1\ntrigger: {webhook: {path: h}}\nsteps:\n  one: {action: http}\n"


def records(tp: TopicPartition, offsets: range) -> list[ConsumedRecord]:
    return [
        ConsumerRecord(tp.topic, tp.partition, n, 0, 0, None, b"x", None, 0, 1, ()) for n in offsets
    ]


def test_held_commands_are_taken_in_order_per_partition_up_to_the_limit() -> None:
    a, b = TopicPartition("c", 0), TopicPartition("c", 1)
    held = HeldCommands()
    held.add({a: records(a, range(3)), b: records(b, range(10, 12))})
    held.add({a: records(a, range(3, 5))})
    assert held.count == 7
    first = held.take(4)
    assert [r.offset for r in first[a]] == [0, 1, 2, 3]
    assert b not in first
    second = held.take(10)  # the rest of a went behind b
    assert list(second) == [b, a]
    assert [r.offset for r in second[a]] == [4]
    assert not held
    held.add({a: records(a, range(5, 7)), b: records(b, range(12, 13))})
    held.drop_partitions({1})
    held.drop(a)
    assert held.count == 0
    assert held.take(5) == {}


class Recording(Engine):
    """Records each batch's offsets; the steps in ``during_first`` run inside the first
    batch's decide, one before each command."""

    batches: list[list[int]]
    during_first: list[Callable[[], Awaitable[None]]]

    async def _commit_batch(
        self, batches: Fetched, staged: Staged
    ) -> tuple[dict[int, int], set[int]]:
        self.batches.append([r.offset for rs in batches.values() for r in rs])
        return await super()._commit_batch(batches, staged)

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        if len(self.batches) == 1 and self.during_first:
            await self.during_first.pop(0)()
        return await super().handle(record, staged)


class FailingThird(Engine):
    """Fails its third command once as a lost connection would: the engine aborts the
    transaction, rewinds and decides again."""

    handled = 0

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        self.handled += 1
        if self.handled == 3:
            raise KafkaConnectionError("injected: connection lost while deciding")
        return await super().handle(record, staged)


@pytest.mark.integration
async def test_commands_arriving_in_two_waves_during_a_batch_are_decided_in_the_next(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    first = await start_runs(kafka_bootstrap, topics, "held", 2)
    waves: list[list[str]] = []

    async def wave() -> None:
        # each wave acknowledged, then time for the consumer to fetch it
        waves.append(await start_runs(kafka_bootstrap, topics, "held", 3))
        await asyncio.sleep(0.5)

    engine, _, clients = await engine_for(kafka_bootstrap, topics, Recording, TEXT)
    assert isinstance(engine, Recording)
    engine.batches, engine.during_first = [], [wave, wave]

    async def slow_produce(
        producer: AIOKafkaProducer, outs: Sequence[OutboundRecord]
    ) -> dict[TopicPartition, int]:
        written = await send_records(producer, outs)
        await asyncio.sleep(0.5)  # a slow broker: time for a fetch to come back meanwhile
        return written

    monkeypatch.setattr(engine_module, "send_records", slow_produce)

    async def all_started() -> bool:
        return len(await run_started_counts(kafka_bootstrap, topics)) == 8

    try:
        await run_until(engine, all_started, "every run started")
    finally:
        for client in clients:
            await client.stop()
    # the second wave reached the broker after the first had been fetched, and was
    # fetched after a later stage of the same batch, not left at the broker for a third
    assert engine.batches[:2] == [[0, 1], [2, 3, 4, 5, 6, 7]]
    counts = await run_started_counts(kafka_bootstrap, topics)
    assert counts == dict.fromkeys(first + waves[0] + waves[1], 1)


@pytest.mark.integration
async def test_an_aborted_batch_drops_what_is_held_past_it_and_decides_each_command_once(
    kafka_bootstrap: str,
) -> None:
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    run_ids = await start_runs(kafka_bootstrap, topics, "held", 7)
    engine, consumer, clients = await engine_for(
        kafka_bootstrap, topics, FailingThird, TEXT, max_batch=2
    )
    commands = TopicPartition(topics.commands, 0)

    async def all_committed() -> bool:
        return bool(await consumer.committed(commands) == 7)

    try:
        await run_until(engine, all_committed, "every command's offset committed")
    finally:
        for client in clients:
            await client.stop()
    assert isinstance(engine, FailingThird)
    assert engine.handled == 8  # the failed command was decided again
    assert await run_started_counts(kafka_bootstrap, topics) == dict.fromkeys(run_ids, 1)


async def test_a_consumer_without_an_assignment_reads_as_rebalancing() -> None:
    # aiokafka's own flag, read by name: this fails if aiokafka moves it, and taking
    # records would then wait out a rebalance in the middle of a transaction
    consumer = make_consumer("127.0.0.1:9", group_id="g", client_id="t-none")
    try:
        assert reassigning(consumer)
    finally:
        await consumer.stop()
