"""The inbox projection against a real PostgreSQL: exactly once, positions, dead letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiokafka import TopicPartition

from baton_approvals.consumer import Projector
from baton_approvals.db import Connection, Pool, load_migrations, migrate
from baton_approvals.gates import GateState, StateFilter
from baton_approvals.store import GateStore, apply_record
from baton_common.kafka import ConsumedRecord
from baton_common.testing import eventually

from .fakes import T0, TOPIC, FakeConsumer, FakePublisher, closed, garbage, opened, record_of

pytestmark = pytest.mark.integration


def projector(
    pool: Pool, publisher: FakePublisher, consumer: FakeConsumer | None = None
) -> Projector:
    return Projector(
        consumer=consumer or FakeConsumer(),
        pool=pool,
        handle=apply_record,
        publisher=publisher,
        name="approvals",
        dlq_topic="baton.dlq",
    )


async def test_migrations_are_applied_once(pool: Pool, schema: str) -> None:
    assert await migrate(pool, schema=schema) == []
    async with pool.acquire() as conn:
        versions = await conn.fetch("select version from approvals_schema_migrations")
    assert [r["version"] for r in versions] == [m.version for m in load_migrations()]


async def test_gate_opened_then_closed(pool: Pool, publisher: FakePublisher) -> None:
    p = projector(pool, publisher)
    store = GateStore(pool)

    await p.apply_batch(TOPIC, 0, [record_of(opened("g1"), 0)])
    gate = await store.get("g1")
    assert gate is not None
    assert gate.state is GateState.PENDING
    assert gate.approvers == ["group:secops-oncall", "carol"]
    assert (gate.opened_at, gate.opened_event_id, gate.correlation_id) == (
        T0,
        "open-g1",
        "corr-run-1",
    )

    later = T0 + timedelta(minutes=5)
    await p.apply_batch(TOPIC, 0, [record_of(closed("g1", outcome="denied", time=later), 1)])
    gate = await store.get("g1")
    assert gate is not None
    assert (gate.state, gate.decided_by, gate.comment, gate.closed_at) == (
        GateState.DENIED,
        "alice",
        "ok",
        later,
    )
    assert publisher.records == []


async def test_a_redelivered_batch_is_applied_once(pool: Pool, publisher: FakePublisher) -> None:
    p = projector(pool, publisher)
    batch = [record_of(opened("g1"), 10), record_of(closed("g1"), 11)]

    assert await p.apply_batch(TOPIC, 2, batch) == 12
    # Reopening after the close would be wrong; a redelivery must not do it.
    assert await p.apply_batch(TOPIC, 2, [record_of(opened("g1"), 10), *batch[1:]]) == 12

    gate = await GateStore(pool).get("g1")
    assert gate is not None
    assert gate.state is GateState.APPROVED


async def test_an_opened_gate_is_inserted_once(pool: Pool, publisher: FakePublisher) -> None:
    p = projector(pool, publisher)

    await p.apply_batch(TOPIC, 0, [record_of(opened("g1", event_id="first"), 0)])
    await p.apply_batch(TOPIC, 0, [record_of(opened("g1", event_id="second"), 1)])

    gate = await GateStore(pool).get("g1")
    assert gate is not None
    assert gate.opened_event_id == "first"


async def test_unusable_records_are_dead_lettered_and_skipped(
    pool: Pool, publisher: FakePublisher
) -> None:
    p = projector(pool, publisher)
    nul = opened("g-nul").model_copy(
        update={"data": {**opened("g-nul").data, "message": "nul \x00 byte"}}
    )

    next_offset = await p.apply_batch(
        TOPIC,
        1,
        [
            garbage(0, partition=1),
            record_of(nul, 1, partition=1),
            record_of(opened("g2"), 2, partition=1),
        ],
    )

    assert next_offset == 3
    letters = publisher.envelopes("baton.dlq")
    assert [(e.data["offset"], e.data["consumer"]) for e in letters] == [
        (0, "approvals"),
        (1, "approvals"),
    ]
    assert "value is not JSON" in str(letters[0].data["reason"])
    assert "database refused the record" in str(letters[1].data["reason"])
    assert await GateStore(pool).get("g-nul") is None
    assert await GateStore(pool).get("g2") is not None


async def test_a_failed_dead_letter_rolls_the_batch_back(
    pool: Pool, publisher: FakePublisher
) -> None:
    p = projector(pool, publisher)
    publisher.failing = True

    with pytest.raises(Exception, match="no broker"):
        await p.apply_batch(TOPIC, 0, [record_of(opened("g1"), 0), garbage(1)])

    assert await GateStore(pool).get("g1") is None
    publisher.failing = False
    assert await p.apply_batch(TOPIC, 0, [record_of(opened("g1"), 0), garbage(1)]) == 2
    assert await GateStore(pool).get("g1") is not None


async def test_assignment_seeks_to_stored_positions(pool: Pool, publisher: FakePublisher) -> None:
    consumer = FakeConsumer()
    p = projector(pool, publisher, consumer)
    await p.apply_batch(TOPIC, 3, [record_of(opened("g1"), 41, partition=3)])

    await p.seek_to_stored({TopicPartition(TOPIC, 3), TopicPartition(TOPIC, 4)})

    assert consumer.seeks == {TopicPartition(TOPIC, 3): 42}
    assert consumer.beginnings == [TopicPartition(TOPIC, 4)]
    assert p.joined


async def test_listing_filters_and_orders_newest_first(
    pool: Pool, publisher: FakePublisher
) -> None:
    p = projector(pool, publisher)
    await p.apply_batch(
        TOPIC,
        0,
        [
            record_of(opened("old", approvers=["group:soc"], time=T0), 0),
            record_of(opened("mid", approvers=["bob"], time=T0 + timedelta(hours=1)), 1),
            record_of(
                opened("new", approvers=["group:soc", "eve"], time=T0 + timedelta(hours=2)), 2
            ),
            record_of(closed("mid"), 3),
        ],
    )
    store = GateStore(pool)

    assert [g.gate_id for g in await store.find()] == ["new", "mid", "old"]
    assert [g.gate_id for g in await store.find(state=StateFilter.PENDING)] == ["new", "old"]
    assert [g.gate_id for g in await store.find(state=StateFilter.DECIDED)] == ["mid"]
    assert [g.gate_id for g in await store.find(state=StateFilter.APPROVED)] == ["mid"]
    assert [g.gate_id for g in await store.find(group="soc")] == ["new", "old"]
    assert [g.gate_id for g in await store.find(decidable_by=["bob", "group:x"])] == ["mid"]
    assert [g.gate_id for g in await store.find(limit=1)] == ["new"]


async def test_the_loop_survives_errors_and_applies_each_record_once(
    pool: Pool, publisher: FakePublisher
) -> None:
    tp = TopicPartition(TOPIC, 0)
    consumer = FakeConsumer(
        log={tp: [record_of(opened("g1"), 0), record_of(closed("g1"), 1)]}, poll_errors=1
    )
    failures = [RuntimeError("connection reset")]

    async def flaky(conn: Connection, record: ConsumedRecord) -> str | None:
        if record.offset == 1 and failures:
            raise failures.pop()
        return await apply_record(conn, record)

    p = Projector(
        consumer=consumer,
        pool=pool,
        handle=flaky,
        publisher=publisher,
        name="approvals",
        dlq_topic="baton.dlq",
    )
    await p.seek_to_stored({tp})
    p.start()
    try:

        async def approved() -> bool:
            gate = await GateStore(pool).get("g1")
            return gate is not None and gate.state is GateState.APPROVED

        await eventually(approved, within=10, what="gate g1 approved")
        assert p.not_ready() is None
    finally:
        await p.stop()

    assert consumer.seeks == {tp: 0}  # the failed batch was rewound to its first record
    assert p.not_ready() == "consumer loop is not running"
