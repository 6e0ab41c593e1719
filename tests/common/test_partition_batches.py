"""Partition batches choose the partition aiokafka's default partitioner would."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from baton_common.kafka import make_producer
from baton_common.partition_batches import default_partitioner, murmur2, partition_of


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


async def test_producers_partition_keys_as_aiokafka_does() -> None:
    rng = random.Random(7)
    reference = DefaultPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(300):
            key = str(uuid.UUID(int=rng.getrandbits(128))).encode()
            assert default_partitioner(key, partitions, partitions) == reference(
                key, partitions, partitions
            )
    assert default_partitioner(None, [0, 1, 2], [1]) == 1  # any available one, as aiokafka
    producer = make_producer("127.0.0.1:9", client_id="t")
    try:
        assert producer._partitioner is default_partitioner
    finally:
        await producer.stop()
