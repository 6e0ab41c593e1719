"""Webhook records gathered into one producer batch per partition (``GatheredSends``).

On the real Kafka: concurrent callers' records share batches, land on the partition
``send`` picks for their key, keep each caller's order, and are all acknowledged. With a
stand-in producer (the hand-over rules, not Kafka): a partition's next batch waits for the
previous one's ack, a full batch goes at once, a failure reaches every caller of its batch,
and a batch whose deadline passes before it was handed over is never written.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from baton_common.kafka import OutboundRecord, make_producer
from baton_common.testing import eventually
from baton_ingest.gathered import GatheredSends
from baton_ingest.publisher import KafkaPublisher, PublisherUnavailable

from .kit import new_namespace, prepare, read_all


@pytest.mark.integration
@pytest.mark.parametrize("lanes", [1, 2])
async def test_concurrent_callers_share_batches_land_where_send_puts_them_in_order(
    kafka_bootstrap: str, lanes: int
) -> None:
    topics = await prepare(kafka_bootstrap, new_namespace(), [])
    gathered_topic, single = topics.commands, topics.runs  # same partition count
    keys = [str(uuid.uuid4()).encode() for _ in range(5)]
    producers = [
        make_producer(
            kafka_bootstrap, client_id=f"test-gathered-{n}", linger_ms=0, max_batch_size=2048
        )
        for n in range(lanes)
    ]
    producer = producers[0]
    handed: list[int] = []
    for lane in producers:
        await lane.start()
        send_batch = lane.send_batch

        async def counting(
            batch: Any, topic: str, *, partition: int, send: Any = send_batch
        ) -> Any:
            handed.append(batch.record_count())
            return await send(batch, topic, partition=partition)

        lane.send_batch = counting
    try:
        sends = GatheredSends(producer, linger=0.005, more=producers[1:])

        async def caller(n: int) -> list[BaseException | None]:
            key = keys[n % len(keys)]
            records = [
                OutboundRecord(gathered_topic, key, f"{n}.{line}".encode(), [("n", b"%d" % n)])
                for line in range(1 + n % 3)  # some callers send several records (NDJSON)
            ]
            return await sends.deliver(records, 30.0)

        results = await asyncio.gather(*(caller(n) for n in range(300)))
        for key in keys:
            await producer.send(single, b"reference", key=key)
        await producer.flush()
    finally:
        for lane in producers:
            await lane.stop()

    assert all(outcome is None for outcomes in results for outcome in outcomes)
    written = await read_all(kafka_bootstrap, gathered_topic)
    expected = {f"{n}.{line}".encode() for n in range(300) for line in range(1 + n % 3)}
    assert sorted(r.value or b"" for r in written) == sorted(expected)  # each once
    assert len(handed) < len(written) / 5  # batches, not records
    where = {r.key: r.partition for r in await read_all(kafka_bootstrap, single)}
    assert all(r.partition == where[r.key] for r in written)
    for n in range(300):  # a caller's records stay in its order
        mine = [v for r in written if (v := r.value or b"").startswith(f"{n}.".encode())]
        assert mine == sorted(mine)
    assert written[0].headers[0][0] == "n"


@dataclass
class _Builder:
    """Stands in for aiokafka's batch builder: ``capacity`` records fit."""

    capacity: int
    records: list[bytes] = field(default_factory=list)

    def append(self, *, timestamp: None, key: bytes | None, value: bytes, headers: Any) -> Any:
        if len(self.records) >= self.capacity and self.records:
            return None
        self.records.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.records)


@dataclass
class _Producer:
    """Stands in for the producer's batch API; each handed batch waits for ``acks``."""

    capacity: int = 100
    handed: list[list[bytes]] = field(default_factory=list)
    acks: list[asyncio.Future[None]] = field(default_factory=list)

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> _Builder:
        return _Builder(self.capacity)

    async def send_batch(self, batch: _Builder, topic: str, *, partition: int) -> Any:
        self.handed.append(batch.records)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


def _records(*values: str) -> list[OutboundRecord]:
    return [OutboundRecord("t", b"path", v.encode(), []) for v in values]


async def test_a_partition_gathers_while_its_previous_batch_awaits_the_ack() -> None:
    producer = _Producer()
    sends = GatheredSends(producer, linger=0)
    first = asyncio.create_task(sends.deliver(_records("a"), 30))
    await eventually(_handed(producer, 1), within=5, what="the first batch handed over")
    later = [asyncio.create_task(sends.deliver(_records(v), 30)) for v in "bcd"]
    await asyncio.sleep(0.05)
    assert producer.handed == [[b"a"]]  # b, c, d wait for a's ack

    producer.acks[0].set_result(None)
    assert await first == [None]
    await eventually(_handed(producer, 2), within=5, what="the second batch handed over")
    assert producer.handed[1] == [b"b", b"c", b"d"]
    producer.acks[1].set_exception(RuntimeError("broker says no"))
    outcomes = await asyncio.gather(*later)
    assert all(isinstance(o[0], RuntimeError) for o in outcomes)


async def test_with_two_producers_a_partition_has_two_batches_in_flight() -> None:
    first_lane, second_lane = _Producer(), _Producer()
    sends = GatheredSends(first_lane, linger=0, more=[second_lane])
    a = asyncio.create_task(sends.deliver(_records("a"), 30))
    await eventually(_handed(first_lane, 1), within=5, what="a handed to the first producer")
    b = asyncio.create_task(sends.deliver(_records("b"), 30))
    await eventually(_handed(second_lane, 1), within=5, what="b handed without a's ack")
    c = asyncio.create_task(sends.deliver(_records("c"), 30))
    await asyncio.sleep(0.05)
    assert (first_lane.handed, second_lane.handed) == ([[b"a"]], [[b"b"]])  # c waits

    first_lane.acks[0].set_result(None)
    assert await a == [None]
    await eventually(_handed(first_lane, 2), within=5, what="c handed to the free producer")
    assert first_lane.handed[1] == [b"c"]
    first_lane.acks[1].set_result(None)
    second_lane.acks[0].set_result(None)
    assert await b == [None]
    assert await c == [None]


async def test_the_rest_of_a_callers_records_follow_their_start_on_one_producer() -> None:
    first_lane, second_lane = _Producer(capacity=2), _Producer(capacity=2)
    sends = GatheredSends(first_lane, linger=0, more=[second_lane])
    delivery = asyncio.create_task(sends.deliver(_records("1", "2", "3", "4", "5"), 30))
    await eventually(_handed(first_lane, 2), within=5, what="the caller's two full batches")
    await asyncio.sleep(0.05)
    # in one connection's order: the second producer, free, takes none of them
    assert first_lane.handed == [[b"1", b"2"], [b"3", b"4"]]
    assert second_lane.handed == []  # and "5" waits: two batches are in flight

    first_lane.acks[0].set_result(None)
    await eventually(_handed(first_lane, 3), within=5, what="5 behind 3 and 4")
    assert first_lane.handed[2] == [b"5"]
    assert second_lane.handed == []
    first_lane.acks[1].set_result(None)
    first_lane.acks[2].set_result(None)
    assert await delivery == [None] * 5


async def test_a_full_batch_goes_at_once_and_a_callers_records_keep_their_order() -> None:
    producer = _Producer(capacity=2)
    sends = GatheredSends(producer, linger=60)  # only fullness hands a batch over here
    delivery = asyncio.create_task(sends.deliver(_records("1", "2", "3", "4", "5"), 30))
    await eventually(_handed(producer, 2), within=5, what="two full batches handed over")
    assert producer.handed == [[b"1", b"2"], [b"3", b"4"]]
    producer.acks[0].set_result(None)
    producer.acks[1].set_result(None)
    await asyncio.sleep(0.05)
    assert not delivery.done()  # "5" lingers in an open batch
    delivery.cancel()


async def test_a_batch_past_its_deadline_before_hand_over_is_never_written() -> None:
    producer = _Producer()
    sends = GatheredSends(producer, linger=0)
    first = asyncio.create_task(sends.deliver(_records("a"), 0.2))
    await eventually(_handed(producer, 1), within=5, what="the first batch handed over")
    second = await sends.deliver(_records("b"), 0.1)  # waits behind a's ack, which never comes

    assert isinstance(second[0], TimeoutError)
    assert isinstance((await first)[0], TimeoutError)
    producer.acks[0].set_result(None)
    await asyncio.sleep(0.05)
    assert producer.handed == [[b"a"]]  # b was dropped, not written late

    third = asyncio.create_task(sends.deliver(_records("c"), 5))
    await eventually(_handed(producer, 2), within=5, what="the next batch handed over")
    assert producer.handed[1] == [b"c"]
    producer.acks[1].set_result(None)
    assert await third == [None]


async def test_no_producer_or_no_metadata_is_every_records_error_and_sends_nothing() -> None:
    unattached = await KafkaPublisher().deliver(_records("a", "b"), 1)
    assert [type(r) for r in unattached] == [PublisherUnavailable, PublisherUnavailable]

    class _NoMetadata(_Producer):
        async def partitions_for(self, topic: str) -> set[int]:
            raise TimeoutError("no metadata")

    producer = _NoMetadata()
    outcomes = await GatheredSends(producer, linger=0).deliver(_records("a", "b"), 1)
    assert [type(r) for r in outcomes] == [TimeoutError, TimeoutError]
    await asyncio.sleep(0.01)
    assert producer.handed == []


def _handed(producer: _Producer, count: int) -> Any:
    async def probe() -> bool:
        return len(producer.handed) >= count

    return probe


async def test_hand_needs_the_topics_partitions_first_then_shares_deliver_batches() -> None:
    producer = _Producer()
    sends = GatheredSends(producer, linger=0)
    assert sends.hand(_records("a"), 30) is None  # no metadata yet: nothing appended
    first = asyncio.create_task(sends.deliver(_records("a"), 30))  # asks for it
    await eventually(_handed(producer, 1), within=5, what="a handed over")

    waits = sends.hand(_records("b", "c"), 30)  # now at once, without a coroutine
    assert waits is not None
    [(waiter, count)] = waits
    assert count == 2
    producer.acks[0].set_result(None)
    await eventually(_handed(producer, 2), within=5, what="b and c handed over")
    assert producer.handed == [[b"a"], [b"b", b"c"]]
    assert not waiter.done()
    producer.acks[1].set_result(None)
    await waiter
    assert await first == [None]
