"""The rebalance callback gives a partition up only once the batch in its transaction has
committed, through the real Kafka: the partition's next owner reads committed offsets and
a committed ``baton.runs``, and neither waits for an open transaction (ADR 0184)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from scheduler_engine import engine_for, namespaced, start_runs

from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.testing import eventually
from baton_common.topics import provision_topics
from baton_scheduler.engine import Engine, Staged, _Rebalance

pytestmark = pytest.mark.integration


async def group_offset(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The group's committed offset of ``tp`` as the broker answers a new owner (the
    consumer's own ``committed`` may answer from its cache)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="t-admin")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = offsets.get(tp)
    return None if found is None else int(found.offset)


TEXT = "id: held\nversion: 1\ntrigger: {webhook: {path: h}}\nsteps:\n  a: {action: http}\n"


class GatedCommit(Engine):
    """An engine that stops, inside its transaction, after deciding ``expected`` commands,
    until the test opens the gate."""

    expected = 0
    handled = 0
    gate: asyncio.Event

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        out = await super().handle(record, staged)
        self.handled += 1
        if self.handled == self.expected:
            await self.gate.wait()
        return out


async def test_revocation_waits_for_the_batch_in_its_transaction(kafka_bootstrap: str) -> None:
    topics = namespaced(f"t{uuid.uuid4().hex[:10]}")
    await provision_topics(kafka_bootstrap, topics)
    commands = TopicPartition(topics.commands, 0)
    engine, _, clients = await engine_for(kafka_bootstrap, topics, GatedCommit, TEXT)
    assert isinstance(engine, GatedCommit)
    engine.gate = asyncio.Event()
    loop = asyncio.create_task(engine.run())
    try:
        run_ids = await start_runs(kafka_bootstrap, topics, "held", 3)
        engine.expected = len(run_ids)

        async def at_the_gate() -> bool:
            return engine.handled == engine.expected

        await eventually(at_the_gate, within=60, what="the batch decided, its commit held")
        revoking = asyncio.create_task(_Rebalance(engine).on_partitions_revoked([commands]))
        await asyncio.wait({revoking}, timeout=0.5)
        returned_while_open = revoking.done()
        engine.gate.set()
        await revoking
        committed_at_handover = await group_offset(kafka_bootstrap, engine._group_id, commands)

        assert not returned_while_open  # the callback waited for the open transaction
        assert committed_at_handover == len(run_ids)  # what the next owner reads
        assert engine.assigned == set()
        assert [engine.store.get(r) for r in run_ids] == [None] * len(run_ids)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        for client in clients:
            await client.stop()
