"""The router's partition batches land where ``send`` puts them, on real Kafka."""

from __future__ import annotations

import uuid

import pytest

from baton_common.kafka import OutboundRecord, make_producer
from baton_ingest.batches import send_batches

from .kit import new_namespace, prepare, read_all


@pytest.mark.integration
async def test_batches_land_where_send_puts_them_in_order_and_complete_once_acknowledged(
    kafka_bootstrap: str,
) -> None:
    topics = await prepare(kafka_bootstrap, new_namespace(), [])
    batched, single = topics.commands, topics.runs  # same partition count
    keys = [str(uuid.uuid4()).encode() for _ in range(400)] * 3  # repeats keep their order
    big = b"x" * 40_000  # larger than a batch: submitted in a batch of its own
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
