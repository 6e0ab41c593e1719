"""`baton audit rebuild` waits for where a projection can stand, not for the end offset:
on a transactional log the two differ by the commit marker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from baton_cli.audit_log import projected_ends
from baton_common.kafka import make_consumer, make_producer

from .live import create_topic, namespace

pytestmark = pytest.mark.integration


async def _write(bootstrap: str, topic: str, transactional_id: str) -> None:
    producer = make_producer(bootstrap, client_id="t-ends", transactional_id=transactional_id)
    await producer.start()
    try:
        async with producer.transaction():  # offsets 0, 1, 2 and the commit marker (3)
            for n in range(3):
                await producer.send(topic, b"committed %d" % n, partition=0)
        await producer.begin_transaction()  # 4, 5 and the abort marker (6)
        for n in range(2):
            await producer.send(topic, b"aborted %d" % n, partition=0)
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = make_consumer(bootstrap, group_id=None, client_id="t-ends")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        ends = await consumer.end_offsets([tp])
        return int(ends[tp])
    finally:
        await consumer.stop()


def test_the_projected_end_skips_commit_markers_and_aborted_records(kafka_bootstrap: str) -> None:
    ns = namespace()
    written, empty = f"{ns}.runs", f"{ns}.stories"
    create_topic(kafka_bootstrap, written, partitions=1)
    create_topic(kafka_bootstrap, empty, partitions=1)
    asyncio.run(_write(kafka_bootstrap, written, f"{ns}-writer"))

    ends = asyncio.run(projected_ends(kafka_bootstrap, [written, empty]))

    assert asyncio.run(_end_offset(kafka_bootstrap, written)) == 7
    assert ends == {written: {0: 3}, empty: {0: 0}}
