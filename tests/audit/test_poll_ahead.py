"""The projection polls ahead while it applies a poll (ADR 0570). A batch rolled back while
the next poll was taken is read again from its first record: the records polled meanwhile
for its partition are neither applied out of order nor twice, nor lost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import kafka_topics
import pytest

from baton_audit.admin import checksum
from baton_audit.consumer import stored_positions
from baton_audit.db import Connection, Pool
from baton_audit.writer import AuditWriter
from baton_common.kafka import ConsumedRecord, make_producer, outbound
from baton_common.testing import Record, eventually

from .conftest import PoolFactory
from .fakes import T0, approved_run, consuming, projector_on, triage_run
from .live import namespace

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _log(topic: str) -> list[list[Record]]:
    """Runs spread over the partitions by run, as the scheduler keys them; per partition."""
    parts: list[list[Record]] = [[] for _ in range(PARTITIONS)]
    for n in range(12):
        start = T0 + timedelta(minutes=n)
        for run in (triage_run(f"t{n}", start=start), approved_run(f"a{n}", start=start)):
            part = parts[n % PARTITIONS]
            for envelope in run:
                o = outbound(topic, envelope.subject, envelope)
                part.append(
                    Record(topic, n % PARTITIONS, len(part), o.key, o.value, tuple(o.headers))
                )
    return parts


class _FailsOnce:
    """The writer, but each batch holding one of ``offsets`` (partition, offset) fails the
    first time, as a lost connection would, after the writer has written it."""

    def __init__(self, writer: AuditWriter, offsets: set[tuple[int, int]]) -> None:
        self._writer = writer
        self._pending = set(offsets)
        self.failed: list[tuple[int, int]] = []

    async def apply(
        self, conn: Connection, records: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        unusable = await self._writer.apply(conn, records)
        for record in records:
            if (record.partition, record.offset) in self._pending:
                self._pending.discard((record.partition, record.offset))
                self.failed.append((record.partition, record.offset))
                raise RuntimeError("connection lost")  # rolls the whole batch back
        return unusable


async def _reference(pool: Pool, topic: str, stories: str, parts: list[list[Record]]) -> None:
    projector = projector_on(pool, AuditWriter(runs_topic=topic, stories_topic=stories).apply)
    for partition, records in enumerate(parts):
        await projector.apply_batch(topic, partition, records)


async def test_a_rolled_back_batch_is_read_again_past_the_poll_taken_ahead(
    kafka_bootstrap: str, new_pool: PoolFactory
) -> None:
    ns = namespace()
    topic, stories = f"{ns}.runs", f"{ns}.stories"
    await kafka_topics.create_topic(kafka_bootstrap, topic, PARTITIONS)
    parts = _log(topic)
    producer = make_producer(kafka_bootstrap, client_id="t-ahead")
    await producer.start()
    try:
        for records in parts:
            for r in records:
                await producer.send_and_wait(
                    topic, r.value, key=r.key, headers=list(r.headers), partition=r.partition
                )
    finally:
        await producer.stop()
    expected_pool = await new_pool()
    await _reference(expected_pool, topic, stories, parts)
    expected = await checksum(expected_pool)

    pool = await new_pool()
    # Small polls, so a poll ahead holds records of the partition whose batch fails.
    handler = _FailsOnce(
        AuditWriter(runs_topic=topic, stories_topic=stories, kept_runs=1000),
        {(0, 20), (1, 45), (1, 46)},
    )
    async with consuming(kafka_bootstrap, ns, [topic], pool, handler.apply, max_records=7):

        async def caught_up() -> bool:
            stored = await stored_positions(pool, [topic])
            return stored == {(topic, p): len(parts[p]) for p in range(PARTITIONS)}

        await eventually(caught_up, within=60, what="every record applied")

    assert sorted(handler.failed) == [(0, 20), (1, 45), (1, 46)]
    assert await checksum(pool) == expected
