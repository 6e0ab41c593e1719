"""The executor's publisher on real Kafka: records published together go out in partition
batches, each ``publish`` returns once its record is acknowledged, and a failed delivery
reaches every publisher of the group (which retries)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from platform_kit import topic_env

from baton_common.kafka import OutboundRecord, make_consumer, make_producer, read_to_end
from baton_common.partition_batches import partition_of
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_executor.publisher import KafkaPublisher, PublisherUnavailable


async def fresh_topics(bootstrap: str) -> TopicSettings:
    """This test's own topics (3 partitions each)."""
    env = topic_env(f"t{uuid.uuid4().hex[:10]}")
    topics = TopicSettings.model_validate(
        {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in env.items()}
    )
    await provision_topics(bootstrap, topics)
    return topics


def count_calls(producer: AIOKafkaProducer, name: str) -> list[None]:
    """Calls of the real producer's method ``name``, one item each."""
    calls: list[None] = []
    method = getattr(producer, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return await method(*args, **kwargs)

    setattr(producer, name, counted)
    return calls


@pytest.mark.integration
async def test_records_published_together_go_out_in_partition_batches(
    kafka_bootstrap: str,
) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    producer = make_producer(kafka_bootstrap, client_id="test-publisher")
    singles, batches = count_calls(producer, "send"), count_calls(producer, "send_batch")
    publisher = KafkaPublisher(window_seconds=0.05)
    keys = [f"run-{n}".encode() for n in range(60)]
    await producer.start()
    publisher.attach(producer)
    try:
        await asyncio.gather(
            *(
                publisher.publish(OutboundRecord(topics.commands, key, b"%d" % n, [("n", b"x")]))
                for n, key in enumerate(keys)
            )
        )
        partitions = sorted(await producer.partitions_for(topics.commands))
    finally:
        await producer.stop()

    assert singles == []
    assert 1 <= len(batches) <= len(partitions)  # one batch per partition, not per record
    consumer = make_consumer(kafka_bootstrap, topics.commands, group_id=None, client_id="t")
    await consumer.start()
    try:
        written = [record async for record in read_to_end(consumer)]
    finally:
        await consumer.stop()
    landed = [(r.partition, r.key or b"", int(r.value or b"-1")) for r in written]
    assert sorted(n for _, _, n in landed) == list(range(60))
    assert all(partition == partition_of(key, partitions) for partition, key, _ in landed)
    for partition in partitions:  # in publishing order within a partition
        values = [n for p, _, n in landed if p == partition]
        assert values == sorted(values)


@pytest.mark.integration
async def test_a_failed_delivery_fails_every_publish_of_its_group(kafka_bootstrap: str) -> None:
    topics = await fresh_topics(kafka_bootstrap)
    producer = make_producer(kafka_bootstrap, client_id="test-publisher")
    publisher = KafkaPublisher(window_seconds=0.05)
    fine = OutboundRecord(topics.commands, b"k", b"v", [])
    too_large = OutboundRecord(topics.commands, b"k", b"x" * 3_000_000, [])  # the broker refuses
    await producer.start()
    publisher.attach(producer)
    try:
        results = await asyncio.gather(
            publisher.publish(fine), publisher.publish(too_large), return_exceptions=True
        )
    finally:
        await producer.stop()

    assert len(results) == 2
    assert all(isinstance(r, Exception) for r in results), results


async def test_publishing_without_a_producer_is_refused() -> None:
    record = OutboundRecord("baton.commands", b"k", b"v", [])
    with pytest.raises(PublisherUnavailable):
        await KafkaPublisher().publish(record)
