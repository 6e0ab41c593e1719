"""A transaction's records sent as one record batch per partition.

``AIOKafkaProducer.send`` costs a coroutine, a partitioner call, a batch lookup and a
future per record, and the engine then gathered one future per record. A command batch
writes hundreds of records to a handful of partitions, so they are appended to one
``BatchBuilder`` per partition (aiokafka's C record builder) and each batch is submitted
with ``send_batch``: one future per partition. Records land where ``send`` would put
them: an explicit partition, else the default partitioner's choice for the key
(murmur2 of the key, as :func:`baton_common.ids.partition_for`), in the order given.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from baton_common.kafka import OutboundRecord

__all__ = ["send_records"]


async def send_records(
    producer: AIOKafkaProducer, records: Sequence[OutboundRecord]
) -> dict[TopicPartition, int]:
    """Send ``records`` in the producer's open transaction and wait for their
    acknowledgement; return one past the last offset written, per partition."""
    grouped: dict[TopicPartition, list[OutboundRecord]] = {}
    partitions: dict[str, list[int]] = {}
    for out in records:
        partition = out.partition
        if partition is None:
            partition = await _partition(producer, out, partitions)
        grouped.setdefault(TopicPartition(out.topic, partition), []).append(out)
    sent = []
    for tp, outs in grouped.items():
        batch = producer.create_batch()
        count = 0
        for out in outs:
            appended = batch.append(
                key=out.key, value=out.value, timestamp=None, headers=out.headers
            )
            if appended is not None:
                count += 1
                continue
            # full: submit it and start the next one (a lone record always fits an empty one)
            sent.append(
                (tp, count, await producer.send_batch(batch, tp.topic, partition=tp.partition))
            )
            batch = producer.create_batch()
            batch.append(key=out.key, value=out.value, timestamp=None, headers=out.headers)
            count = 1
        sent.append((tp, count, await producer.send_batch(batch, tp.topic, partition=tp.partition)))
    ends: dict[TopicPartition, int] = {}
    for tp, count, future in sent:
        written = await future
        ends[tp] = max(ends.get(tp, 0), written.offset + count)
    return ends


async def _partition(
    producer: AIOKafkaProducer, out: OutboundRecord, known: dict[str, list[int]]
) -> int:
    """The partition ``producer.send`` would choose for a record without one: by its key's
    murmur2 hash, or any partition for a record without a key (a dead letter of a keyless
    record)."""
    partitions = known.get(out.topic)
    if partitions is None:
        partitions = known[out.topic] = sorted(await producer.partitions_for(out.topic))
    if out.key is None:
        return random.choice(partitions)  # as the default partitioner does
    hashed: int = murmur2(out.key)
    return partitions[(hashed & 0x7FFFFFFF) % len(partitions)]
