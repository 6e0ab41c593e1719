"""One batch, one transaction, through the real Kafka (ADR 0120): the consumer offsets join
the transaction before its records, and commit or abort with them."""

from __future__ import annotations

import asyncio
import gc
import uuid

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from scheduler_engine import catalog_of, engine_clients, namespaced, run_until, start_runs

from baton_common.kafka import (
    ConsumedRecord,
    OutboundRecord,
    make_consumer,
    read_to_end,
)
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_scheduler.engine import Engine, Staged

pytestmark = pytest.mark.integration

TEXT = "id: txn\nversion: 1\ntrigger: {webhook: {path: t}}\nsteps:\n  one: {action: http}\n"
STAGES = ("decide", "offsets", "produce", "commit")


class BrokenOnce(Engine):
    """An engine whose first command fails outside the decider (say, a bug in journal
    code the decider's guard does not cover)."""

    failed = False

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("injected failure while deciding")
        return await super().handle(record, staged)


def stage_count(stage: str) -> float:
    value = REGISTRY.get_sample_value("baton_scheduler_batch_stage_seconds_count", {"stage": stage})
    return value or 0.0


async def committed_runs(bootstrap: str, topics: TopicSettings) -> set[str]:
    consumer = make_consumer(bootstrap, topics.runs, group_id=None, client_id="t-check")
    await consumer.start()
    try:
        return {r.key.decode() async for r in read_to_end(consumer) if r.key is not None}
    finally:
        await consumer.stop()


async def test_a_failed_batch_aborts_with_its_offsets_and_a_good_one_commits_them(
    kafka_bootstrap: str,
) -> None:
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = namespaced(ns)
    await provision_topics(kafka_bootstrap, topics)
    catalog = catalog_of(TEXT)
    group = f"{ns}-s"
    consumer, producer, recovery = await engine_clients(kafka_bootstrap, group)
    commands = TopicPartition(topics.commands, 0)
    before = {stage: stage_count(stage) for stage in STAGES}

    def engine(kind: type[Engine]) -> Engine:
        return kind(
            consumer=consumer,
            producer=producer,
            recovery_consumer=recovery,
            catalog=catalog,
            topics=topics,
            group_id=group,
        )

    try:
        broken = engine(BrokenOnce)
        broken.subscribe()
        await consumer.start()
        run_ids = await start_runs(kafka_bootstrap, topics, "txn", 3)
        with pytest.raises(RuntimeError, match="injected failure"):
            await asyncio.wait_for(broken.run(), 60)
        assert gc.get_freeze_count() > 0  # the heap was frozen after recovery
        # the offsets had joined the aborted transaction first: they are not committed,
        # and none of the batch's records is readable
        assert await consumer.committed(commands) is None
        assert await committed_runs(kafka_bootstrap, topics) == set()

        # the same process decides the batch again from the unchanged states
        await broken._rewind([commands])
        fixed = engine(Engine)
        fixed.assigned = broken.assigned

        async def offsets_committed() -> bool:
            return bool(await consumer.committed(commands) == 3)

        await run_until(fixed, offsets_committed, "the batch's offsets committed")
        assert await committed_runs(kafka_bootstrap, topics) == set(run_ids)
        assert all(stage_count(stage) > before[stage] for stage in STAGES)
    finally:
        for client in (consumer, producer, recovery):
            await client.stop()
