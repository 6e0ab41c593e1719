"""The command feed takes records from the consumer while the loop is busy (ADR 0140), holds
at most its bound, hands them out in order per partition, and drops what it holds before a
seek, so a rewound partition is read again from where it was put back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError
from kafka_topics import create_topic

from baton_common.kafka import make_consumer, make_producer
from baton_common.testing import eventually
from baton_scheduler.feed import Batches, CommandFeed

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"t{uuid.uuid4().hex[:10]}.feed"
    await create_topic(kafka_bootstrap, name, partitions=2)
    return name


@pytest.fixture
async def consumer(kafka_bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = make_consumer(
        kafka_bootstrap, topic, group_id=f"{topic}-g", client_id="t-feed", fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def append(bootstrap: str, topic: str, per_partition: int) -> None:
    producer = make_producer(bootstrap, client_id="t-feed-p")
    await producer.start()
    try:
        for n in range(per_partition):
            for partition in (0, 1):
                value = f"{partition}:{n}".encode()
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


def values(batches: Batches, partition: int) -> list[bytes | None]:
    return [r.value for tp, rs in batches.items() if tp.partition == partition for r in rs]


async def test_records_are_taken_from_the_consumer_while_nothing_asks_and_handed_out_in_order(
    kafka_bootstrap: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    await append(kafka_bootstrap, topic, 5)
    feed = CommandFeed(consumer, max_held=100)
    async with feed.running():
        # nobody takes: the reader still drains aiokafka's buffer, so the consumer's
        # position moves on and the next fetch goes out
        async def all_read() -> bool:
            positions = [await consumer.position(tp) for tp in (p0, p1)]
            return positions == [5, 5]

        await eventually(all_read, within=30, what="the feed read both partitions")
        first = await feed.take(7, wait_seconds=1)
        rest = await feed.take(100, wait_seconds=1)
    assert sum(len(r) for r in first.values()) == 7
    for partition in (0, 1):
        assert values(first, partition) + values(rest, partition) == [
            f"{partition}:{n}".encode() for n in range(5)
        ]


async def test_the_feed_holds_no_more_than_its_bound(
    kafka_bootstrap: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    await append(kafka_bootstrap, topic, 5)
    feed = CommandFeed(consumer, max_held=3)

    async def read() -> int:
        return sum([await consumer.position(tp) for tp in partitions])

    async with feed.running():

        async def bound_reached() -> bool:
            return await read() >= 3

        await eventually(bound_reached, within=30, what="the feed read up to its bound")
        await asyncio.sleep(0.3)  # the reader had time to read more, had it not stopped
        assert await read() == 3
        seen = sum(len(r) for r in (await feed.take(100, wait_seconds=5)).values())
        assert seen == 3
        while seen < 10:  # taking makes room: the rest follows
            seen += sum(len(r) for r in (await feed.take(2, wait_seconds=5)).values())
    assert seen == 10


async def test_forgotten_records_are_read_again_after_a_seek(
    kafka_bootstrap: str, topic: str, consumer: AIOKafkaConsumer
) -> None:
    await append(kafka_bootstrap, topic, 3)
    feed = CommandFeed(consumer, max_held=100)
    async with feed.running():
        taken: Batches = {}
        while sum(len(r) for r in taken.values()) < 6:
            for tp, records in (await feed.take(100, wait_seconds=5)).items():
                taken.setdefault(tp, []).extend(records)
        p0 = TopicPartition(topic, 0)
        feed.forget([p0])  # as the engine does before seeking: put partition 0 back
        consumer.seek(p0, 1)
        again: Batches = {}
        while len(again.get(p0, [])) < 2:
            for tp, records in (await feed.take(100, wait_seconds=5)).items():
                again.setdefault(tp, []).extend(records)
    assert [r.value for r in again[p0]] == [b"0:1", b"0:2"]
    assert TopicPartition(topic, 1) not in again  # nothing else came back


async def test_what_stops_the_reader_is_raised_to_the_loop(
    kafka_bootstrap: str, topic: str
) -> None:
    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"{topic}-s", client_id="t-stop")
    await consumer.start()
    await consumer.stop()
    feed = CommandFeed(consumer, max_held=10)
    async with feed.running():
        with pytest.raises(ConsumerStoppedError):
            await asyncio.wait_for(feed.take(10, wait_seconds=30), 20)
