"""Two replicas of the audit projection in one consumer group (ADR 0571), as a deployment
with two replicas runs them: on the real Kafka and PostgreSQL, the partitions are split,
every record is applied exactly once, the chains verify from the store, and a rebuild asked
of one replica re-projects the other's partitions too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import kafka_topics
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from baton_audit.admin import PROJECTED_TABLES, checksum
from baton_audit.consumer import Projector, stored_positions
from baton_audit.db import Connection, Pool
from baton_audit.positions import StalePosition, lock_position
from baton_audit.store import AuditStore
from baton_audit.writer import AuditWriter
from baton_common.envelope import Envelope
from baton_common.hashing import find_break
from baton_common.kafka import (
    ConsumedRecord,
    OutboundRecord,
    make_consumer,
    make_producer,
    outbound,
)
from baton_common.testing import eventually

from .conftest import PoolFactory
from .fakes import T0, TOPIC, approved_run, consuming, projector_on, records, triage_run
from .live import namespace

pytestmark = pytest.mark.integration

PARTITIONS = 4
RUNS = 16  # of each kind


def _logs() -> dict[str, list[Envelope]]:
    logs: dict[str, list[Envelope]] = {}
    for n in range(RUNS):
        start = T0 + timedelta(minutes=n)
        logs[f"t{n}"] = triage_run(f"t{n}", start=start)
        logs[f"a{n}"] = approved_run(f"a{n}", start=start)
    return logs


class _Counted:
    """The writer, counting the records handed to it (those above the stored position)."""

    def __init__(self, writer: AuditWriter) -> None:
        self._writer = writer
        self.applied = 0

    async def apply(
        self, conn: Connection, batch: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        unusable = await self._writer.apply(conn, batch)
        self.applied += len(batch)
        return unusable


@dataclass
class _Replicas:
    """Two replicas' handlers over one store, and a reference store projected in one pass."""

    ns: str
    topic: str
    stories: str
    reference: Pool
    pool: Pool
    handlers: list[_Counted]

    def reference_projector(self) -> Projector:
        writer = AuditWriter(runs_topic=self.topic, stories_topic=self.stories)
        return projector_on(self.reference, writer.apply)

    async def caught_up(self, total: int) -> None:
        async def applied() -> bool:
            stored = await stored_positions(self.pool, [self.topic])
            return sum(stored.values()) == total

        await eventually(applied, within=60, what="every record applied")


async def _arrange(bootstrap: str, new_pool: PoolFactory) -> _Replicas:
    ns = namespace()
    topic, stories = f"{ns}.runs", f"{ns}.stories"
    await kafka_topics.create_topic(bootstrap, topic, PARTITIONS)
    await kafka_topics.create_topic(bootstrap, stories, 1)
    handlers = [
        _Counted(AuditWriter(runs_topic=topic, stories_topic=stories, kept_runs=1000))
        for _ in range(2)
    ]
    return _Replicas(ns, topic, stories, await new_pool(), await new_pool(), handlers)


async def test_two_replicas_split_the_partitions_and_project_everything_once(
    kafka_bootstrap: str, new_pool: PoolFactory
) -> None:
    r = await _arrange(kafka_bootstrap, new_pool)
    logs = _logs()
    outs = [outbound(r.topic, run_id, e) for run_id, log in logs.items() for e in log]
    pool, handlers = r.pool, r.handlers
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                consuming(kafka_bootstrap, r.ns, [r.topic, r.stories], pool, handler.apply)
            )
            for handler in handlers
        ]

        await _split(replicas, r.topic, r.stories)
        await _produce(kafka_bootstrap, outs)
        await _project_reference(r.reference_projector(), r.topic, kafka_bootstrap)

        await r.caught_up(len(outs))
        expected = await checksum(r.reference)
        assert await checksum(pool) == expected
        assert [h.applied > 0 for h in handlers] == [True, True]
        assert sum(h.applied for h in handlers) == len(outs)  # none twice
        store = AuditStore(pool)
        for run_id, log in logs.items():
            stored_log = await store.envelopes(run_id)
            assert len(stored_log) == len(log)
            assert find_break(stored_log) is None, run_id

        # A rebuild asked of one replica: the other's partitions are emptied too, and the
        # other replica, idle, notices and re-projects them from offset 0.
        first, _ = replicas[0]
        await first.reset(list(PROJECTED_TABLES))
        await r.caught_up(len(outs))
        assert await checksum(pool) == expected
        assert sum(h.applied for h in handlers) == 2 * len(outs)


async def test_a_replica_joining_while_the_first_projects_takes_its_share_once(
    kafka_bootstrap: str, new_pool: PoolFactory
) -> None:
    r = await _arrange(kafka_bootstrap, new_pool)
    outs = [outbound(r.topic, run_id, e) for run_id, log in _logs().items() for e in log]
    half = len(outs) // 2
    handlers = r.handlers
    async with AsyncExitStack() as stack:

        async def join(handler: _Counted) -> tuple[Projector, AIOKafkaConsumer]:
            topics = [r.topic, r.stories]
            return await stack.enter_async_context(
                consuming(kafka_bootstrap, r.ns, topics, r.pool, handler.apply, max_records=5)
            )

        first = await join(handlers[0])
        await _produce(kafka_bootstrap, outs[:half])

        async def projecting() -> bool:
            return handlers[0].applied > 0

        await eventually(projecting, within=60, what="the first replica projecting")
        second = await join(handlers[1])  # a rebalance while the first works through its polls
        await _split([first, second], r.topic, r.stories)
        await _produce(kafka_bootstrap, outs[half:])
        await _project_reference(r.reference_projector(), r.topic, kafka_bootstrap)

        await r.caught_up(len(outs))
        assert await checksum(r.pool) == await checksum(r.reference)
        assert handlers[1].applied > 0
        assert sum(h.applied for h in handlers) == len(outs)  # none twice


async def _split(
    replicas: Sequence[tuple[Projector, AIOKafkaConsumer]], topic: str, stories: str
) -> None:
    every = {TopicPartition(topic, p) for p in range(PARTITIONS)} | {TopicPartition(stories, 0)}

    async def split() -> bool:
        a, b = (consumer.assignment() for _, consumer in replicas)
        return bool(a) and bool(b) and not a & b and a | b == every

    await eventually(split, within=60, what="the partitions split between the replicas")


async def _produce(bootstrap: str, outs: Sequence[OutboundRecord]) -> None:
    producer = make_producer(bootstrap, client_id="replicas-producer")
    await producer.start()
    try:
        for o in outs:
            await o.send(producer)
    finally:
        await producer.stop()


async def _project_reference(projector: Projector, topic: str, bootstrap: str) -> None:
    """The same log projected in one pass by one projector, read back from Kafka."""
    by_partition: dict[int, list[ConsumedRecord]] = {p: [] for p in range(PARTITIONS)}
    consumer = make_consumer(bootstrap, topic, group_id=None, client_id="reference")
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        total = sum(ends.values())
        seen = 0
        while seen < total:
            for tp, got in (await consumer.getmany(timeout_ms=1000)).items():
                by_partition[tp.partition].extend(got)
                seen += len(got)
    finally:
        await consumer.stop()
    for partition, got in by_partition.items():
        await projector.apply_batch(topic, partition, got)


async def test_a_batch_finds_its_position_moved_by_another_replica(pool: Pool) -> None:
    log = records(approved_run("a1") + approved_run("a2", start=T0 + timedelta(hours=1)))
    projector = projector_on(pool)
    await projector.apply_batch(TOPIC, 0, log[:6])
    async with pool.acquire() as conn:  # what a rebuild on another replica does
        await conn.execute(f"truncate {', '.join([*PROJECTED_TABLES, 'consumer_positions'])}")

    with pytest.raises(StalePosition) as stale:
        await projector.apply_batch(TOPIC, 0, log[6:])
    assert stale.value.stored == 0
    assert await stored_positions(pool, [TOPIC]) == {}  # rolled back: nothing written
    other = projector_on(pool)  # a replica that never saw the partition takes the store's
    assert await other.apply_batch(TOPIC, 0, log[6:]) == len(log)


async def test_a_rebuild_waits_for_a_batch_in_flight_on_another_replica(pool: Pool) -> None:
    projector = projector_on(pool)
    projector.start()
    try:
        async with pool.acquire() as other:
            await other.execute("begin")  # another replica's batch, its position locked
            await lock_position(other, TOPIC, 0)
            rebuild = asyncio.create_task(projector.reset(list(PROJECTED_TABLES)))

            async def truncate_waiting() -> bool:
                async with pool.acquire() as conn:
                    waiting = await conn.fetchval("select count(*) from pg_locks where not granted")
                return isinstance(waiting, int) and waiting > 0

            await eventually(truncate_waiting, within=30, what="the truncate waiting for the batch")
            # The batch goes on to the tables (a deadlock if the truncate held them already).
            await other.fetchval("select count(*) from events")
            await other.fetchval("select count(*) from runs")
            await other.execute("commit")
            await asyncio.wait_for(rebuild, timeout=30)
    finally:
        await projector.stop()
    assert await stored_positions(pool, [TOPIC]) == {}
