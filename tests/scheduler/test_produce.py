"""A transaction's records sent one batch per partition land where ``send`` puts them,
in order, and the returned end offsets are one past each partition's last record."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import TopicPartition
from kafka_topics import create_topic

from baton_common import ids
from baton_common.kafka import OutboundRecord, make_consumer, make_producer, read_to_end
from baton_scheduler.produce import send_records

pytestmark = pytest.mark.integration


async def test_records_land_by_key_or_partition_in_order(kafka_bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.produce"
    await create_topic(kafka_bootstrap, topic, partitions=3)
    keys = [f"run-{n}" for n in range(40)]
    records = [
        OutboundRecord(topic, key.encode(), (b"x" * 2000) + key.encode(), [("h", b"1")])
        for key in keys
    ]  # ~80 KiB: more than one 16 KiB batch per partition
    records += [OutboundRecord(topic, b"pinned", b"p", [], partition=2)]
    records += [OutboundRecord(topic, None, b"keyless", [])]
    producer = make_producer(kafka_bootstrap, client_id="t-p", transactional_id=topic)
    await producer.start()
    try:
        async with producer.transaction():
            ends = await send_records(producer, records)
    finally:
        await producer.stop()

    consumer = make_consumer(kafka_bootstrap, topic, group_id=None, client_id="t-c")
    await consumer.start()
    try:
        read = [record async for record in read_to_end(consumer)]
    finally:
        await consumer.stop()
    by_partition: dict[int, list[bytes]] = {}
    for record in read:
        assert record.key is not None or record.value == b"keyless"
        by_partition.setdefault(record.partition, []).append(record.value or b"")
        if record.key is not None and record.key != b"pinned":
            assert record.partition == ids.partition_for(record.key.decode(), 3)
    assert len(read) == len(records)
    assert read_values_in_order(by_partition, records)
    assert by_partition[2][-1] in (b"p", b"keyless")
    for partition, values in by_partition.items():
        last = max(r.offset for r in read if r.partition == partition)
        assert ends[TopicPartition(topic, partition)] == last + 1
        assert len(values) == sum(1 for r in read if r.partition == partition)


def read_values_in_order(by_partition: dict[int, list[bytes]], sent: list[OutboundRecord]) -> bool:
    """Each partition holds its records in the order they were given."""
    for values in by_partition.values():
        expected = [r.value for r in sent if r.value in set(values)]
        if values != expected:
            return False
    return True
