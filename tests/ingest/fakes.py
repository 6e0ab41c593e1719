"""In-memory stand-ins for Kafka used by the ingest tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from baton_common.envelope import Envelope, decode_record, encode_record
from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.testing import Record


class FakePublisher:
    """Records what it was asked to publish; can hold acks back or fail."""

    def __init__(self) -> None:
        self.published: list[OutboundRecord] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None
        self.calls = 0

    async def publish(self, record: OutboundRecord) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.published.append(record)

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        await (await self.send_many(records))

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(asyncio.wait_for(self.publish(r), within) for r in records),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def send_many(self, records: list[OutboundRecord]) -> Awaitable[None]:
        return asyncio.ensure_future(self._all(records))

    async def _all(self, records: list[OutboundRecord]) -> None:
        results = await asyncio.gather(*(self.publish(r) for r in records), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def envelopes(self, topic: str | None = None) -> list[Envelope]:
        return [
            decode_record(r.value, r.headers)
            for r in self.published
            if topic is None or r.topic == topic
        ]


def record_of(
    envelope: Envelope, *, topic: str = "baton.ingest", partition: int = 0, offset: int = 0
) -> Record:
    value, headers = encode_record(envelope)
    return Record(topic, partition, offset, b"key", value, tuple(headers))


@dataclass
class FakeConsumer:
    """Partition logs read from a position, like a Kafka consumer; remembers commits."""

    logs: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    polls: int = 0

    def append(self, tp: TopicPartition, *records: Record) -> None:
        self.logs.setdefault(tp, []).extend(records)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]:
        self.polls += 1
        batch: dict[TopicPartition, list[Record]] = {}
        budget = max_records if max_records is not None else 500
        for tp, log in self.logs.items():
            position = self.positions.get(tp, log[0].offset if log else 0)
            records = [r for r in log if r.offset >= position][:budget]
            if records:
                batch[tp] = records
                budget -= len(records)
                self.positions[tp] = records[-1].offset + 1
        if not batch:
            await asyncio.sleep(0.01)
        return batch

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.commits.append(dict(offsets or {}))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.positions[partition] = offset
