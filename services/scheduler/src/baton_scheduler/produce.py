"""A transaction's records sent as one record batch per partition
(:func:`baton_common.partition_batches.submit_batches`), with the end offsets written."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from baton_common.kafka import OutboundRecord
from baton_common.partition_batches import submit_batches

__all__ = ["send_records"]


async def send_records(
    producer: AIOKafkaProducer, records: Sequence[OutboundRecord]
) -> dict[TopicPartition, int]:
    """Send ``records`` in the producer's open transaction and wait for their
    acknowledgement; return one past the last offset written, per partition."""
    ends: dict[TopicPartition, int] = {}
    for batch in await submit_batches(producer, records):
        written = await batch.delivery
        ends[batch.partition] = max(ends.get(batch.partition, 0), written.offset + batch.count)
    return ends
