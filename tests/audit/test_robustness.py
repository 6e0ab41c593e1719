"""The projection under duplicated delivery, crashes mid-batch and a PostgreSQL restart.

Each test projects the same log into a reference store in one pass, then into another
store under the fault, and compares the checksums of every projected row and the row
counts: no duplicate, no missing row.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from baton_audit.admin import checksum
from baton_audit.consumer import Projector, RecordHandler
from baton_audit.db import Connection, Pool, create_pool
from baton_audit.positions import StalePosition
from baton_audit.writer import AuditWriter
from baton_common.kafka import ConsumedRecord

from .conftest import PoolFactory
from .fakes import (
    KEPT_RUNS,
    STORIES_TOPIC,
    T0,
    TOPIC,
    FakeConsumer,
    FakePublisher,
    approved_run,
    records,
    story_records,
    triage_run,
)

pytestmark = pytest.mark.integration

WRITER = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=KEPT_RUNS)
ROOT = Path(__file__).resolve().parents[2]


def the_log() -> list[ConsumedRecord]:
    log = []
    for n in range(20):
        start = T0 + timedelta(minutes=n)
        log += triage_run(f"t{n}", start=start) + approved_run(f"a{n}", start=start)
    return records(log)


EXPECTED = {
    "events": 20 * (10 + 6),
    "runs": 40,
    "approvals": 40,
    "step_attempts": 20 * 3 + 20,
    "ai_interactions": 20 * 1 + 20,  # verdict of triage (output.ai) and of approved (ai.*)
    "stories": 2,
    "story_approvals": 0,
}


def projector(pool: Pool, handle: RecordHandler = WRITER.apply) -> Projector:
    return Projector(
        consumer=FakeConsumer(),
        pool=pool,
        handle=handle,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
    )


async def reference(new_pool: PoolFactory) -> tuple[str, dict[str, int]]:
    pool = await new_pool()
    p = projector(pool)
    await p.apply_batch(TOPIC, 0, the_log())
    await p.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))
    found = await checksum(pool)
    assert found[1] == EXPECTED
    return found


async def test_duplicated_delivery_changes_nothing(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool)
    log = the_log()

    # Overlapping windows (each record delivered up to three times), then everything again.
    for start in range(0, len(log), 7):
        await p.apply_batch(TOPIC, 0, log[max(0, start - 14) : start + 7])
    await p.apply_batch(TOPIC, 0, log)
    stories = story_records(3, 4)
    for _ in range(3):
        await p.apply_batch(STORIES_TOPIC, 0, stories)

    assert await checksum(pool) == expected


class Crash(Exception):
    pass


async def test_a_crash_mid_batch_leaves_no_trace(new_pool: PoolFactory, database_url: str) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    log = the_log()
    calls = 0

    async def crashing(
        conn: Connection, batch: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        nonlocal calls
        calls += 1
        unusable = await WRITER.apply(conn, batch)  # rows written, transaction still open
        if calls == 2:
            raise Crash("process died before commit")
        return unusable

    first = projector(pool, crashing)
    await first.apply_batch(TOPIC, 0, log[:100])
    with pytest.raises(Crash):
        await first.apply_batch(TOPIC, 0, log[100:250])
    assert (await checksum(pool))[1]["events"] == 100

    # A new process (new pool and projector) resumes from the stored position; Kafka
    # redelivers from its last committed offset, which may be older.
    second_pool = await new_pool_like(pool, database_url)
    try:
        restarted = projector(second_pool)
        await restarted.apply_batch(TOPIC, 0, log[50:])
        await restarted.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))
    finally:
        await second_pool.close()

    assert await checksum(pool) == expected


async def test_a_cancelled_batch_leaves_no_trace(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    log = the_log()
    entered = asyncio.Event()

    async def slow(
        conn: Connection, batch: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        unusable = await WRITER.apply(conn, batch)
        entered.set()
        await asyncio.Event().wait()  # killed here, rows written but not committed
        return unusable

    task = asyncio.create_task(projector(pool, slow).apply_batch(TOPIC, 0, log))
    await entered.wait()
    task.cancel()
    await asyncio.wait({task})
    assert (await checksum(pool))[1]["events"] == 0

    p = projector(pool)
    await p.apply_batch(TOPIC, 0, log)
    await p.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))
    assert await checksum(pool) == expected


async def new_pool_like(pool: Pool, database_url: str) -> Pool:
    """Another pool on the same schema as ``pool``: the connections of a restarted process."""
    async with pool.acquire() as conn:
        schema = await conn.fetchval("select current_schema()")
    assert isinstance(schema, str)
    return await create_pool(database_url, schema=schema, max_size=2)


def _postgres(action: str) -> None:
    env = {**os.environ}
    subprocess.run(
        [str(ROOT / "deploy/local/postgres.sh"), action], check=True, env=env, timeout=120
    )


async def test_a_postgresql_restart_loses_and_duplicates_nothing(
    new_pool: PoolFactory, database_url: str
) -> None:
    port = urlparse(database_url).port
    if not os.environ.get("BATON_STACK_DIR") or os.environ.get("BATON_PG_PORT") != str(port):
        pytest.skip("needs the test PostgreSQL of deploy/local (BATON_STACK_DIR, BATON_PG_PORT)")
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool)
    log = the_log()
    await p.apply_batch(TOPIC, 0, log[:200])

    await asyncio.to_thread(_postgres, "stop")
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any connection error will do
            await p.apply_batch(TOPIC, 0, log[150:400])
    finally:
        await asyncio.to_thread(_postgres, "start")

    # The projector's loop retries the batch from its first record; so do we.
    for _ in range(50):
        try:
            await p.apply_batch(TOPIC, 0, log[150:])
            break
        except Exception:  # connections of the pool die with the server; new ones follow
            await asyncio.sleep(0.2)
    await p.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))

    assert await checksum(pool) == expected


async def test_lost_positions_do_not_duplicate_events(new_pool: PoolFactory) -> None:
    expected = await reference(new_pool)
    pool = await new_pool()
    p = projector(pool)
    log = the_log()
    await p.apply_batch(TOPIC, 0, log[:120])
    async with pool.acquire() as conn:
        await conn.execute("truncate consumer_positions")  # e.g. restored from an old backup

    with pytest.raises(StalePosition):  # the running projector notices; its loop rewinds to 0
        await p.apply_batch(TOPIC, 0, log[120:])
    await p.apply_batch(TOPIC, 0, log)
    await p.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))

    assert await checksum(pool) == expected
