"""A partition revoked while its batch is in flight, through the real Kafka: the batch still
commits (its records are the new owner's to rebuild from), but the run states it staged
for that partition are not applied here, nor their timers watched."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import TopicPartition
from scheduler_engine import engine_for, namespaced, run_until, start_runs

from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.topics import provision_topics
from baton_scheduler.engine import Engine, Staged

pytestmark = pytest.mark.integration

TEXT = (
    "id: timed\nversion: 1\ntrigger: {webhook: {path: t}}\ntimeout: 1h\n"
    "steps:\n  a: {action: http, timeout: 30s}\n"
)


class RevokedMidBatch(Engine):
    """An engine whose partition is revoked (the rebalance callback runs) right after it
    decides the batch's last command, before the transaction commits."""

    expected = 0
    handled = 0

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        out = await super().handle(record, staged)
        self.handled += 1
        if self.handled == self.expected:
            self.revoke([record.partition])
        return out


async def test_a_batch_committed_after_its_partition_was_revoked_leaves_no_state(
    kafka_bootstrap: str,
) -> None:
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    commands = TopicPartition(topics.commands, 0)
    engine, consumer, clients = await engine_for(
        kafka_bootstrap, topics, RevokedMidBatch, TEXT, snapshot_every=100
    )
    assert isinstance(engine, RevokedMidBatch)
    try:
        run_ids = await start_runs(kafka_bootstrap, topics, "timed", 3)
        engine.expected = len(run_ids)

        async def offsets_committed() -> bool:
            return bool(await consumer.committed(commands) == len(run_ids))

        await run_until(engine, offsets_committed, "the batch's offsets committed")
        assert engine.handled == len(run_ids)  # decided, and committed with the offsets
        assert engine.assigned == set()
        assert [engine.store.get(r) for r in run_ids] == [None] * len(run_ids)
        assert len(engine.store) == 0
        assert engine.timers._watched == set()  # no timer of a run this instance dropped
        assert 0 not in engine._runs_end
        assert 0 not in engine._since_snapshot
    finally:
        for client in clients:
            await client.stop()
