"""Records handed to the producer a partition batch at a time.

``AIOKafkaProducer.send`` costs a partitioner call (aiokafka's pure-Python murmur2), a
delivery future and an accumulator lookup per record. The router sends thousands of
records at once, so :func:`send_batches` partitions them itself — the same murmur2 and
the same choice of partition as the producer's default partitioner, so a run's records
land where any other producer would put them — appends them to ``create_batch()``
builders and submits one ``send_batch`` per full batch: one future per batch.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from baton_common.kafka import PRODUCE_SECONDS, OutboundRecord

__all__ = ["murmur2", "partition_of", "send_batches"]

_M: Final = 0x5BD1E995
_SEED: Final = 0x9747B28C
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (``Utils.murmur2``), what aiokafka's partitioner uses.

    The same arithmetic as ``aiokafka.partitioner.murmur2``, reading the 4-byte words
    with one ``struct`` call instead of four indexings per word.
    """
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        at = words << 2
        if tail == 3:
            h ^= data[at + 2] << 16
        if tail >= 2:
            h ^= data[at + 1] << 8
        h = ((h ^ data[at]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The partition the default partitioner picks for ``key`` among sorted ``partitions``."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


async def send_batches(
    producer: AIOKafkaProducer, records: Sequence[OutboundRecord]
) -> asyncio.Task[None]:
    """Hand every record to ``producer``; the result completes once all are acknowledged.

    Records keep their order within a partition. A record without a key (or with its own
    partition) goes where ``producer.send`` would put it; a record too large for an empty
    batch is sent alone by ``producer.send``. If the result fails, some records may have
    been written: the caller retries the whole set (the router's records are idempotent
    by run id).
    """
    started = time.perf_counter()
    groups: dict[tuple[str, int], list[OutboundRecord]] = {}
    deliveries: list[tuple[str, asyncio.Future[Any]]] = []
    partitions: dict[str, list[int]] = {}
    for record in records:
        partition = record.partition
        if partition is None:
            if record.key is None:
                deliveries.append((record.topic, await _send_one(producer, record)))
                continue
            known = partitions.get(record.topic)
            if known is None:
                await producer.client._wait_on_metadata(record.topic)
                known = partitions[record.topic] = sorted(
                    producer.client.cluster.partitions_for_topic(record.topic) or ()
                )
            partition = partition_of(record.key, known)
        groups.setdefault((record.topic, partition), []).append(record)
    for (topic, partition), grouped in groups.items():
        batch = producer.create_batch()
        for record in grouped:
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                is not None
            ):
                continue
            if batch.record_count():
                deliveries.append(
                    (topic, await producer.send_batch(batch, topic, partition=partition))
                )
            batch = producer.create_batch()
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                is None
            ):
                deliveries.append((topic, await _send_one(producer, record)))
        if batch.record_count():
            deliveries.append((topic, await producer.send_batch(batch, topic, partition=partition)))
    return asyncio.ensure_future(_acknowledged(deliveries, started))


async def _send_one(producer: AIOKafkaProducer, record: OutboundRecord) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = await producer.send(
        record.topic,
        record.value,
        key=record.key,
        headers=record.headers,
        partition=record.partition,
    )
    return future


async def _acknowledged(deliveries: list[tuple[str, asyncio.Future[Any]]], started: float) -> None:
    """Wait for every delivery; observe the produce latency once per batch."""
    await asyncio.gather(*(delivery for _, delivery in deliveries))  # retrieves every error
    elapsed = time.perf_counter() - started
    for topic, _ in deliveries:
        PRODUCE_SECONDS.labels(topic).observe(elapsed)
