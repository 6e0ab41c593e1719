"""Partition batches: the same murmur2 and partitions as aiokafka's producer, on real Kafka."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from baton_common.kafka import OutboundRecord, make_producer
from baton_ingest.batches import murmur2, partition_of, send_batches

from .kit import new_namespace, prepare, read_all


def test_murmur2_equals_aiokafka_for_every_length_and_byte() -> None:
    rng = random.Random(4)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(80) for _ in range(20)]
    keys += [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(2000)]
    keys += [b"", b"\xff" * 7, b"\x00" * 9]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_a_key_goes_to_the_partition_aiokafka_picks() -> None:
    partitions = list(range(6))
    for n in range(500):
        key = f"run-{n}".encode()
        assert partition_of(key, partitions) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 6


@pytest.mark.integration
async def test_batches_land_where_send_puts_them_in_order_and_complete_once_acknowledged(
    kafka_bootstrap: str,
) -> None:
    topics = await prepare(kafka_bootstrap, new_namespace(), [])
    batched, single = topics.commands, topics.runs  # same partition count
    keys = [str(uuid.uuid4()).encode() for _ in range(400)] * 3  # repeats keep their order
    big = b"x" * 40_000  # larger than an empty batch: sent alone
    records = [
        OutboundRecord(batched, key, f"{n}".encode(), [("n", str(n).encode())])
        for n, key in enumerate(keys)
    ]
    records.insert(17, OutboundRecord(batched, keys[0], big, []))
    records.append(OutboundRecord(batched, None, b"no key", []))
    producer = make_producer(kafka_bootstrap, client_id="test-batches")
    await producer.start()
    try:
        acks = await send_batches(producer, records)
        await acks
        for n, key in enumerate(keys):
            await producer.send(single, f"{n}".encode(), key=key)
        await producer.flush()
    finally:
        await producer.stop()

    written = await read_all(kafka_bootstrap, batched)
    reference = await read_all(kafka_bootstrap, single)
    assert len(written) == len(records)
    where = {r.key: r.partition for r in reference}
    assert all(where[r.key] == r.partition for r in written if r.key is not None)
    for partition in {r.partition for r in written}:
        values = [r.value for r in written if r.partition == partition]
        expected = [r.value for r in records if r.key is not None and where[r.key] == partition]
        assert [v for v in values if v != b"no key"] == expected
    assert next(r for r in written if r.value == b"0").headers == (("n", b"0"),)
