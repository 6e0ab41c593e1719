"""The run history projection against a real PostgreSQL: exactly once, and rebuildable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiokafka import TopicPartition

from baton_audit.consumer import Projector
from baton_audit.db import Pool, migrate
from baton_audit.projection import AuditStatus
from baton_audit.store import AuditStore, RunFilter
from baton_audit.writer import AuditWriter
from baton_common.events import ApprovalRequested, RunStarted
from baton_common.kafka import ConsumedRecord

from .conftest import PoolFactory
from .fakes import (
    STORIES_TOPIC,
    STORY,
    T0,
    TOPIC,
    FakeConsumer,
    FakePublisher,
    approved_run,
    chain,
    garbage,
    records,
)

pytestmark = pytest.mark.integration

WRITER = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC)


def projector(
    pool: Pool, publisher: FakePublisher, consumer: FakeConsumer | None = None
) -> Projector:
    return Projector(
        consumer=consumer or FakeConsumer(),
        pool=pool,
        handle=WRITER.apply,
        publisher=publisher,
        name="audit",
        dlq_topic="baton.dlq",
    )


async def test_migrations_are_applied_once(pool: Pool) -> None:
    async with pool.acquire() as conn:
        schema = await conn.fetchval("select current_schema()")
    assert isinstance(schema, str)
    assert await migrate(pool, schema=schema) == []


async def test_a_run_is_projected(pool: Pool, publisher: FakePublisher) -> None:
    log = approved_run("r1")

    assert await projector(pool, publisher).apply_batch(TOPIC, 0, records(log)) == 6

    store = AuditStore(pool)
    run = await store.run("r1")
    assert run is not None
    assert (run.status, run.story_id, run.story_version, run.last_seq, run.event_count) == (
        AuditStatus.SUCCEEDED,
        STORY,
        4,
        6,
        6,
    )
    assert (run.started_at, run.ended_at, run.correlation_id, run.dedup_key) == (
        log[0].time,
        log[-1].time,
        "corr-r1",
        "A-1",
    )
    assert run.state is not None
    assert run.state.steps["verdict"].output == {"label": "malicious", "confidence": 0.7}

    timeline = await store.timeline("r1")
    assert [e.seq for e in timeline] == [1, 2, 3, 4, 5, 6]
    assert [e.id for e in timeline] == [e.id for e in log]
    assert timeline[0].data == log[0].data
    assert await store.envelopes("r1") == log

    [approval] = await store.approvals("r1")
    assert (approval.gate_id, approval.approvers, approval.decision, approval.approver) == (
        "gate-r1",
        ["group:secops-oncall"],
        "approved",
        "alice",
    )
    assert (approval.requested_at, approval.decided_at) == (log[3].time, log[4].time)
    assert publisher.records == []


async def test_a_run_waits_while_its_gate_is_open(pool: Pool, publisher: FakePublisher) -> None:
    p = projector(pool, publisher)
    log = approved_run("r1")

    await p.apply_batch(TOPIC, 0, records(log[:4]))
    run = await AuditStore(pool).run("r1")
    assert run is not None
    assert run.status is AuditStatus.WAITING_APPROVAL
    [approval] = await AuditStore(pool).approvals("r1")
    assert approval.decision is None

    await p.apply_batch(TOPIC, 0, records(log[4:], first_offset=4))
    run = await AuditStore(pool).run("r1")
    assert run is not None
    assert run.status is AuditStatus.SUCCEEDED


async def test_a_redelivered_batch_is_applied_once(pool: Pool, publisher: FakePublisher) -> None:
    p = projector(pool, publisher)
    batch = records(approved_run("r1"))

    await p.apply_batch(TOPIC, 0, batch[:4])
    await p.apply_batch(TOPIC, 0, batch)

    run = await AuditStore(pool).run("r1")
    assert run is not None
    assert (run.event_count, run.status) == (6, AuditStatus.SUCCEEDED)
    assert len(await AuditStore(pool).timeline("r1")) == 6


async def test_unusable_records_are_dead_lettered_and_unknown_events_kept(
    pool: Pool, publisher: FakePublisher
) -> None:
    [started] = chain("r1", [RunStarted(run_id="r1", story_id=STORY, story_version=4, trigger={})])
    [future] = chain(
        "r1", [RunStarted(run_id="r1", story_id=STORY, story_version=4, trigger={})], first_seq=2
    )
    future = future.model_copy(
        update={"type": "baton.run.paused.v2", "data": {"type": "baton.run.paused.v2"}}
    )
    [no_subject] = chain(
        "r2", [RunStarted(run_id="r2", story_id=STORY, story_version=4, trigger={})]
    )
    no_subject = no_subject.model_copy(update={"subject": None})
    batch: list[ConsumedRecord] = [
        *records([started]),
        garbage(1),
        *records([future], first_offset=2),
        *records([no_subject], first_offset=3),
    ]

    assert await projector(pool, publisher).apply_batch(TOPIC, 0, batch) == 4

    letters = publisher.envelopes()
    assert [(e.data["offset"], e.data["consumer"]) for e in letters] == [(1, "audit"), (3, "audit")]
    assert "no ce_type header" in str(letters[0].data["reason"])
    assert "no subject" in str(letters[1].data["reason"])
    assert [e.type for e in await AuditStore(pool).timeline("r1")] == [
        "baton.run.started.v1",
        "baton.run.paused.v2",
    ]
    run = await AuditStore(pool).run("r1")
    assert run is not None
    assert (run.status, run.event_count) == (AuditStatus.RUNNING, 2)
    assert await AuditStore(pool).run("r2") is None


async def test_a_nul_byte_is_dead_lettered_alone(pool: Pool, publisher: FakePublisher) -> None:
    started, requested = chain(
        "r1",
        [
            RunStarted(run_id="r1", story_id=STORY, story_version=4, trigger={}),
            ApprovalRequested(run_id="r1", step="s", gate_id="g", approvers=["a"], message="\x00"),
        ],
    )

    await projector(pool, publisher).apply_batch(TOPIC, 0, records([started, requested]))

    [letter] = publisher.envelopes()
    assert "database refused the record" in str(letter.data["reason"])
    assert len(await AuditStore(pool).timeline("r1")) == 1


async def test_assignment_seeks_to_stored_positions(pool: Pool, publisher: FakePublisher) -> None:
    consumer = FakeConsumer()
    p = projector(pool, publisher, consumer)
    await p.apply_batch(TOPIC, 5, records(approved_run("r1"), partition=5, first_offset=100))

    await p.seek_to_stored({TopicPartition(TOPIC, 5), TopicPartition(TOPIC, 0)})

    assert consumer.seeks == {TopicPartition(TOPIC, 5): 106}
    assert consumer.beginnings == [TopicPartition(TOPIC, 0)]


async def test_listing_filters_and_orders_newest_first(
    pool: Pool, publisher: FakePublisher
) -> None:
    p = projector(pool, publisher)
    await p.apply_batch(TOPIC, 0, records(approved_run("old", start=T0)))
    waiting = approved_run("new", start=T0 + timedelta(hours=1))[:4]
    await p.apply_batch(TOPIC, 1, records(waiting, partition=1))
    store = AuditStore(pool)

    assert [r.run_id for r in (await store.runs()).items] == ["new", "old"]
    succeeded = await store.runs(RunFilter(status=AuditStatus.SUCCEEDED))
    assert [r.run_id for r in succeeded.items] == ["old"]
    page = await store.runs(RunFilter(story_id=STORY), limit=1)
    assert [r.run_id for r in page.items] == ["new"]
    assert (await store.runs(RunFilter(story_id="other"))).items == []


_DUMP = {
    "events": "select * from events order by kafka_partition, kafka_offset",
    "runs": "select * from runs order by run_id",
    "approvals": "select * from approvals order by gate_id",
    "positions": "select * from consumer_positions order by topic, kafka_partition",
}


async def _dump(pool: Pool) -> dict[str, list[dict[str, object]]]:
    async with pool.acquire() as conn:
        return {name: [dict(r) for r in await conn.fetch(sql)] for name, sql in _DUMP.items()}


async def test_a_rebuild_is_identical(new_pool: PoolFactory, publisher: FakePublisher) -> None:
    log = records(approved_run("r1")) + records(approved_run("r2"), first_offset=6)
    first, second = await new_pool(), await new_pool()

    await projector(first, publisher).apply_batch(TOPIC, 0, log)
    # The same log, read in other batch sizes and with a redelivery.
    rebuild = projector(second, publisher)
    for start in range(0, len(log), 5):
        await rebuild.apply_batch(TOPIC, 0, log[max(0, start - 2) : start + 5])

    assert await _dump(second) == await _dump(first)
