"""The projection's batches commit without waiting for the WAL flush (ADR 0573).

A PostgreSQL crash may then lose the last commits. Each takes its partition's position
with it, so the store is as it was after an earlier batch, consistently: the projector,
still running with its consumer past the lost records, finds the stored position behind
the one it expects (a batch, or the idle check) and reads them again (ADR 0571). These
tests run the projector's own loop against the real PostgreSQL; the consumer is an
in-memory log that honours seeks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition

from baton_audit.admin import PROJECTED_TABLES, checksum, positions
from baton_audit.consumer import Projector
from baton_audit.db import Connection, Pool, create_pool
from baton_audit.writer import AuditWriter
from baton_common.kafka import ConsumedRecord
from baton_common.testing import eventually

from .conftest import PoolFactory
from .fakes import KEPT_RUNS, STORIES_TOPIC, TOPIC, FakePublisher, story_records
from .test_robustness import reference, the_log

pytestmark = pytest.mark.integration

RUNS = TopicPartition(TOPIC, 0)
STORIES = TopicPartition(STORIES_TOPIC, 0)
# Everything a commit writes: the projected rows and the positions.
TABLES = [*PROJECTED_TABLES, "consumer_positions"]


class LogConsumer:
    """One consumer's partitions as in-memory logs: a poll hands out up to ``poll`` records
    of each from its position; ``seek`` moves it, as aiokafka's does."""

    def __init__(self, logs: dict[TopicPartition, list[ConsumedRecord]], poll: int) -> None:
        self.logs = logs
        self.position = dict.fromkeys(logs, 0)
        self.sought: list[tuple[TopicPartition, int]] = []
        self._poll = poll

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumedRecord]]:
        await asyncio.sleep(0.01)
        polled = {}
        for tp, log in self.logs.items():
            taken = [r for r in log if r.offset >= self.position[tp]][: self._poll]
            if taken:
                polled[tp] = taken
                self.position[tp] = taken[-1].offset + 1
        return polled

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.position[partition] = offset
        self.sought.append((partition, offset))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        for tp in partitions:
            self.position[tp] = 0
        return True

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)


async def applied(pool: Pool, runs: int, stories: int) -> None:
    """Wait until the stored positions are ``runs`` and ``stories``."""
    want = {TOPIC: {0: runs}, STORIES_TOPIC: {0: stories}}

    async def there() -> bool:
        return await positions(pool) == want

    await eventually(there, within=30, what=f"positions {want}")


async def durable_point(pool: Pool) -> None:
    """Copy every table a commit writes: the state crash recovery returns to if the
    commits after this point are lost."""
    async with pool.acquire() as conn, conn.transaction():
        for table in TABLES:
            await conn.execute(f"create table lost_tail_{table} as select * from {table}")


async def crash_to_durable_point(pool: Pool) -> None:
    """The store as PostgreSQL's crash recovery leaves it when the commits after
    ``durable_point`` were not flushed: those transactions, rows and positions together,
    never happened."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"truncate {', '.join(TABLES)}")
        for table in TABLES:
            await conn.execute(f"insert into {table} select * from lost_tail_{table}")
            await conn.execute(f"drop table lost_tail_{table}")


@pytest.mark.parametrize("more_after_crash", [True, False], ids=["busy", "idle"])
async def test_commits_lost_in_a_crash_are_read_again(
    new_pool: PoolFactory, more_after_crash: bool
) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    log = the_log()  # 320 events of 40 runs
    consumer = LogConsumer({RUNS: log[:100], STORIES: story_records(3, 4)}, poll=30)
    writer = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=KEPT_RUNS)
    handed: Counter[int] = Counter()

    async def handle(
        conn: Connection, batch: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        if batch[0].topic == TOPIC:
            handed.update(r.offset for r in batch)
        return await writer.apply(conn, batch)

    projector = Projector(
        consumer=consumer,
        pool=pool,
        handle=handle,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
    )
    await projector.seek_to_stored(consumer.assignment())  # as on assignment
    projector.start()
    try:
        await applied(pool, 100, 2)
        await durable_point(pool)
        consumer.logs[RUNS] = log[:200]
        await applied(pool, 200, 2)  # committed, then lost: runs 100-199 of the log

        await crash_to_durable_point(pool)
        if more_after_crash:  # the next batch finds its position moved back
            consumer.logs[RUNS] = log
        else:  # nothing more comes: the idle check finds it
            await applied(pool, 200, 2)
            consumer.logs[RUNS] = log
        await applied(pool, len(log), 2)
    finally:
        await projector.stop()

    assert (RUNS, 100) in consumer.sought  # read again from the last durable position
    assert await checksum(pool) == expected  # no gap, no duplicate
    # The lost records were handed to the writer again, once; every other record once.
    assert handed == Counter(
        {**dict.fromkeys(range(len(log)), 1), **dict.fromkeys(range(100, 200), 2)}
    )


async def test_a_batch_commits_without_waiting_for_the_wal_flush(
    new_pool: PoolFactory, database_url: str
) -> None:
    schema_pool = await new_pool()
    async with schema_pool.acquire() as conn:
        schema = await conn.fetchval("select current_schema()")
    assert isinstance(schema, str)
    # One connection: the setting the batch ran with, then the one it leaves behind.
    pool = await create_pool(database_url, schema=schema, max_size=1)
    writer = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=KEPT_RUNS)
    seen: list[object] = []

    async def handle(
        conn: Connection, batch: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        seen.append(await conn.fetchval("select current_setting('synchronous_commit')"))
        return await writer.apply(conn, batch)

    projector = Projector(
        consumer=LogConsumer({}, poll=1),
        pool=pool,
        handle=handle,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
    )
    try:
        await projector.apply_batch(TOPIC, 0, the_log()[:50])
        await projector.apply_batch(STORIES_TOPIC, 0, story_records(3))
        async with pool.acquire() as conn:
            after = await conn.fetchval("select current_setting('synchronous_commit')")
    finally:
        await pool.close()

    assert seen == ["off", "off"]  # inside each batch's transaction
    assert after == "on"  # only there: the API and a rebuild's truncate commit as before
