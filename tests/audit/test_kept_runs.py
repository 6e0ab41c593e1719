"""Run rows kept in memory between batches (``RunRows``, ADR 0530) change no row.

Many runs in flight interleave in the log, so a batch holds one or two events per run and
the writer folds them into rows it kept from earlier batches. Each test compares the
checksum of every projected row with a store written without kept rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from aiokafka import TopicPartition

from baton_audit.admin import checksum
from baton_audit.consumer import Projector
from baton_audit.db import Connection, Pool
from baton_audit.positions import StalePosition
from baton_audit.writer import AuditWriter
from baton_common.envelope import Envelope
from baton_common.kafka import ConsumedRecord

from .conftest import PoolFactory
from .fakes import (
    STORIES_TOPIC,
    T0,
    TOPIC,
    approved_run,
    projector_on,
    records,
    triage_run,
)

pytestmark = pytest.mark.integration

RUNS = 8


def interleaved_log() -> list[ConsumedRecord]:
    """Runs in flight together: every run's first event, then every run's second, ..."""
    logs: list[list[Envelope]] = []
    for n in range(RUNS // 2):
        start = T0 + timedelta(minutes=n)
        logs += [triage_run(f"t{n}", start=start), approved_run(f"a{n}", start=start)]
    merged = [log[k] for k in range(max(map(len, logs))) for log in logs if k < len(log)]
    return records(merged)


def batches(log: Sequence[ConsumedRecord], size: int = RUNS) -> list[Sequence[ConsumedRecord]]:
    return [log[i : i + size] for i in range(0, len(log), size)]


def projector(pool: Pool, writer: AuditWriter) -> Projector:
    return projector_on(pool, writer.apply)


def writer(kept_runs: int) -> AuditWriter:
    return AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=kept_runs)


async def reference(new_pool: PoolFactory) -> tuple[str, dict[str, int]]:
    """The log in batches of one event per run, every row read back from PostgreSQL."""
    pool = await new_pool()
    p = projector(pool, writer(0))
    for batch in batches(interleaved_log()):
        await p.apply_batch(TOPIC, 0, batch)
    found = await checksum(pool)
    assert found[1]["runs"] == RUNS
    assert found[1]["events"] == len(interleaved_log())
    return found


async def test_kept_rows_give_the_rows_read_back(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool, writer(100))

    for batch in batches(interleaved_log()):
        await p.apply_batch(TOPIC, 0, batch)

    assert await checksum(pool) == expected


async def test_fewer_kept_rows_than_runs_in_flight(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool, writer(3))  # the others are read in full each batch

    for batch in batches(interleaved_log()):
        await p.apply_batch(TOPIC, 0, batch)

    assert await checksum(pool) == expected


async def test_a_row_another_writer_moved_on_is_read_again(new_pool: PoolFactory) -> None:
    # As after a rebalance: another replica applies some batches, then this one resumes.
    expected = await reference(new_pool)
    pool = await new_pool()
    here, elsewhere = projector(pool, writer(100)), projector(pool, writer(100))
    parts = batches(interleaved_log())

    for batch in parts[:3]:
        await here.apply_batch(TOPIC, 0, batch)
    for batch in parts[3:5]:
        await elsewhere.apply_batch(TOPIC, 0, batch)
    await here.seek_to_stored([TopicPartition(TOPIC, 0)])  # the partition assigned back
    for batch in parts[5:]:
        await here.apply_batch(TOPIC, 0, batch)

    assert await checksum(pool) == expected


async def test_a_batch_rolled_back_after_the_writer_ran_leaves_no_trace(
    new_pool: PoolFactory,
) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    kept = writer(100)
    failures = {2, 4}  # these batches fail after the writer's statements, then are retried

    async def fails_after_writing(
        conn: Connection, recs: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        unusable = await kept.apply(conn, recs)
        if recs[0].offset // RUNS in failures:
            failures.discard(recs[0].offset // RUNS)
            raise ConnectionResetError("lost PostgreSQL before commit")
        return unusable

    p = projector_on(pool, fails_after_writing)
    for batch in batches(interleaved_log()):
        try:
            await p.apply_batch(TOPIC, 0, batch)
        except ConnectionResetError:
            await p.apply_batch(TOPIC, 0, batch)  # the projector's retry after a rewind

    assert not failures
    assert await checksum(pool) == expected


async def test_a_store_emptied_for_a_rebuild_is_refilled_alike(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool, writer(100))
    for batch in batches(interleaved_log()):
        await p.apply_batch(TOPIC, 0, batch)

    async with pool.acquire() as conn:
        await conn.execute(
            "truncate events, runs, approvals, step_attempts, ai_interactions, consumer_positions"
        )
    with pytest.raises(StalePosition):  # emptied behind its back: the loop rewinds to 0
        await p.apply_batch(TOPIC, 0, batches(interleaved_log())[0])
    for batch in batches(interleaved_log()):
        await p.apply_batch(TOPIC, 0, batch)

    assert await checksum(pool) == expected
