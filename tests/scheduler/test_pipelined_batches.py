"""A batch is decided while the previous batch's transaction is in flight, on top of that
batch's run states (ADR 0181), through the real Kafka: its commands see the runs the
previous batch started, and when that transaction aborts both batches are decided again,
so every command still takes effect exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from scheduler_engine import catalog_of, engine_clients, namespaced, run_until, start_runs

from baton_common import ids
from baton_common.commands import CompleteStep
from baton_common.kafka import (
    ConsumedRecord,
    OutboundRecord,
    make_consumer,
    make_producer,
    outbound,
    read_to_end,
    to_envelope,
)
from baton_common.settings import TopicSettings
from baton_common.state import StepStatus
from baton_common.topics import provision_topics
from baton_scheduler import command_loop
from baton_scheduler.batch import Staged
from baton_scheduler.engine import Engine
from baton_scheduler.produce import send_records

pytestmark = pytest.mark.integration

TEXT = """
id: piped
version: 1
trigger: {webhook: {path: p}}
steps:
  one: {action: http}
  two: {needs: [one], action: http}
"""


class Tracking(Engine):
    """Counts the commands it decides, and those decided while a transaction was open."""

    handled = 0
    beside_a_transaction: Counter[str]

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        self.handled += 1
        if self._inflight is not None:
            self.beside_a_transaction[record.key.decode() if record.key else ""] += 1
        return await super().handle(record, staged)


async def complete_step_one(bootstrap: str, topics: TopicSettings, run_ids: list[str]) -> None:
    producer = make_producer(bootstrap, client_id="t-executor")
    await producer.start()
    try:
        for run_id in run_ids:
            command = CompleteStep(
                run_id=run_id, step="one", attempt_id=ids.attempt_id(run_id, "one", 1)
            )
            envelope = to_envelope(
                command, id=str(uuid.uuid4()), source="t", time=datetime.now(UTC)
            )
            await outbound(topics.commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()


async def events_per_run(bootstrap: str, topics: TopicSettings) -> Counter[tuple[str, str]]:
    """(run id, event type) → how many are committed on ``baton.runs``."""
    consumer = make_consumer(bootstrap, topics.runs, group_id=None, client_id="t-check")
    await consumer.start()
    counts: Counter[tuple[str, str]] = Counter()
    try:
        async for record in read_to_end(consumer):
            kind = dict(record.headers).get("ce_type", b"").decode()
            if record.key is not None:
                counts[record.key.decode(), kind] += 1
    finally:
        await consumer.stop()
    return counts


async def pipelined_run(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch, *, abort_first: bool
) -> tuple[Tracking, list[str], Counter[tuple[str, str]]]:
    """Start 3 runs; while the first batch's transaction has sent its records, complete
    their step ``one`` and give the engine time to decide that (the transaction then
    commits, or aborts with ``abort_first``); run until every command is committed."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = namespaced(ns)
    await provision_topics(bootstrap, topics)
    run_ids = await start_runs(bootstrap, topics, "piped", 3)
    group = f"{ns}-s"
    consumer, producer, recovery = await engine_clients(bootstrap, group)
    engine = Tracking(
        consumer=consumer,
        producer=producer,
        recovery_consumer=recovery,
        catalog=catalog_of(TEXT),
        topics=topics,
        group_id=group,
    )
    engine.beside_a_transaction = Counter()
    engine.subscribe()
    await consumer.start()
    calls = 0

    async def slow_first_produce(
        producer: AIOKafkaProducer, outs: Sequence[OutboundRecord]
    ) -> dict[TopicPartition, int]:
        nonlocal calls
        calls += 1
        written = await send_records(producer, outs)
        if calls == 1:
            await complete_step_one(bootstrap, topics, run_ids)
            await asyncio.sleep(1.0)  # fetched and decided while this transaction is open
            if abort_first:
                raise KafkaConnectionError("injected: connection lost before EndTxn")
        return written

    monkeypatch.setattr(command_loop, "send_records", slow_first_produce)
    commands = TopicPartition(topics.commands, 0)

    async def all_committed() -> bool:
        return bool(await consumer.committed(commands) == 6)

    try:
        await run_until(engine, all_committed, "every command's offset committed")
    finally:
        for client in (consumer, producer, recovery):
            await client.stop()
    return engine, run_ids, await events_per_run(bootstrap, topics)


def assert_each_once(run_ids: list[str], events: Counter[tuple[str, str]]) -> None:
    for run_id in run_ids:
        assert events[run_id, "baton.run.started.v1"] == 1
        assert events[run_id, "baton.step.succeeded.v1"] == 1  # step one, once
        assert events[run_id, "baton.step.dispatched.v1"] == 2  # one, then two


async def test_a_batch_decided_beside_the_previous_transaction_builds_on_its_states(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, run_ids, events = await pipelined_run(kafka_bootstrap, monkeypatch, abort_first=False)
    # each CompleteStep was decided while the transaction starting its run was open,
    # against that run's uncommitted state, once
    assert engine.beside_a_transaction == dict.fromkeys(run_ids, 1)
    assert engine.handled == 6
    assert_each_once(run_ids, events)
    for run_id in run_ids:
        state = engine.store.get(run_id)
        assert state is not None
        assert state.steps["one"].status is StepStatus.SUCCEEDED
        assert state.steps["two"].status is StepStatus.DISPATCHED


async def test_an_aborted_transaction_replays_the_batch_decided_on_top_of_it(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, run_ids, events = await pipelined_run(kafka_bootstrap, monkeypatch, abort_first=True)
    # the CompleteSteps were decided beside the transaction that then aborted, then
    # dropped with it and decided again after the StartRuns: every command twice, and
    # every effect on the log once
    assert engine.beside_a_transaction == dict.fromkeys(run_ids, 1)
    assert engine.handled == 12
    assert_each_once(run_ids, events)
    for run_id in run_ids:
        state = engine.store.get(run_id)
        assert state is not None
        assert state.steps["two"].status is StepStatus.DISPATCHED
