"""A transaction's coordinator requests from one chain task (ADR 0160): the order they go
in, and transactions through the real Kafka that commit or abort records and offsets."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import OffsetAndMetadata

from baton_common.kafka import make_consumer, make_producer, read_to_end
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_scheduler import txn_requests
from baton_scheduler.txn_requests import next_request


async def pending(txn: TransactionManager) -> list[tuple[str, bool]]:
    """The requests ``next_request`` makes, in order, each answered with success at once."""
    made: list[str] = []

    async def add_offsets(group: str) -> None:
        made.append("AddOffsetsToTxn")
        txn.consumer_group_added(group)

    async def commit_offsets(offsets: dict[TopicPartition, Any], group: str) -> None:
        made.append("TxnOffsetCommit")
        for tp, offset in list(offsets.items()):
            txn.offset_committed(tp, offset.offset, group)

    async def add_partitions(tps: set[TopicPartition]) -> None:
        made.append("AddPartitionsToTxn")
        for tp in list(tps):
            txn.partition_added(tp)

    async def end(result: object) -> None:
        made.append("EndTxn")
        txn.complete_transaction()

    sender = SimpleNamespace(
        _txn_manager=txn,
        _do_add_offsets_to_txn=add_offsets,
        _do_txn_offset_commit=commit_offsets,
        _do_add_partitions_to_txn=add_partitions,
        _do_txn_commit=end,
    )
    steps: list[tuple[str, bool]] = []
    while (step := next_request(sender)) is not None:
        request, then_stop = step
        await request()
        steps.append((made[-1], then_stop))
    return steps


async def test_offsets_go_first_then_partitions_then_the_end_each_once() -> None:
    txn = TransactionManager("t", 60_000)
    txn.set_pid_and_epoch(1, 0)
    txn.begin_transaction()
    txn.maybe_add_partition_to_txn(TopicPartition("runs", 0))
    txn.add_offsets_to_txn({TopicPartition("commands", 0): OffsetAndMetadata(5, "")}, "g")
    txn.committing_transaction()
    assert await pending(txn) == [
        ("AddOffsetsToTxn", False),
        ("TxnOffsetCommit", False),
        ("AddPartitionsToTxn", True),  # the sender routine wakes to send what waited
        ("EndTxn", True),
    ]


async def test_nothing_to_do_is_no_request() -> None:
    txn = TransactionManager("t", 60_000)
    txn.set_pid_and_epoch(1, 0)
    txn.begin_transaction()
    assert next_request(SimpleNamespace(_txn_manager=txn)) is None


@pytest.mark.integration
async def test_transactions_commit_or_abort_records_and_offsets_together(
    kafka_bootstrap: str,
) -> None:
    txn_requests.install()
    ns = f"t{uuid.uuid4().hex[:10]}"
    names = ("stories", "ingest", "commands", "runs", "approvals", "dlq", "snapshots")
    fields: dict[str, object] = {n: f"{ns}.baton.{n}" for n in names}
    topics = TopicSettings.model_validate(
        {**fields, "tasks_prefix": f"{ns}.baton.tasks.", "partitions": 2, "ingest_partitions": 1}
    )
    await provision_topics(kafka_bootstrap, topics)
    topic, commands, group = topics.runs, topics.commands, f"{ns}-g"
    producer = make_producer(kafka_bootstrap, client_id="t-chain", transactional_id=f"{ns}-p")
    await producer.start()
    source = TopicPartition(commands, 0)
    try:
        # back to back, as the engine's batches: every other one begins while the
        # coordinator still writes the previous one's markers
        for n in range(1, 21):
            async with producer.transaction():
                await producer.send_offsets_to_transaction({source: n}, group)
                for partition in (0, 1):
                    await (await producer.send(topic, b"%d" % n, partition=partition))
        assert producer._sender._baton_chain is not None  # the requests went by the chain

        async def dropped() -> None:
            async with producer.transaction():
                await producer.send_offsets_to_transaction({source: 99}, group)
                await (await producer.send(topic, b"0", partition=0))
                raise RuntimeError("dropped")

        with pytest.raises(RuntimeError, match="dropped"):
            await dropped()
    finally:
        await producer.stop()
    reader = make_consumer(kafka_bootstrap, topic, group_id=None, client_id="t-read")
    await reader.start()
    try:
        values = sorted([int(r.value or b"0") async for r in read_to_end(reader)])
    finally:
        await reader.stop()
    assert values == sorted(list(range(1, 21)) * 2)
    offsets = make_consumer(kafka_bootstrap, group_id=group, client_id="t-offsets")
    await offsets.start()
    try:
        assert await offsets.committed(source) == 20
    finally:
        await offsets.stop()
