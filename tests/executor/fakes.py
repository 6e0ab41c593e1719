"""In-memory stand-ins for Kafka used by the executor tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from baton_common.envelope import Envelope, decode_record, encode_record
from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.testing import Record


class FakePublisher:
    """Records what it was asked to publish; fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.published: list[OutboundRecord] = []
        self.failures = failures
        self.calls = 0

    async def publish(self, record: OutboundRecord) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("NotEnoughReplicas")
        self.published.append(record)

    def envelopes(self, topic: str | None = None) -> list[Envelope]:
        return [
            decode_record(r.value, r.headers)
            for r in self.published
            if topic is None or r.topic == topic
        ]


def record_of(envelope: Envelope, tp: TopicPartition, offset: int) -> Record:
    value, headers = encode_record(envelope)
    key = envelope.subject.encode() if envelope.subject else None
    return Record(tp.topic, tp.partition, offset, key, value, tuple(headers))


@dataclass
class FakeConsumer:
    """Partition logs read from a position, like a Kafka consumer; remembers commits."""

    logs: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    max_records_seen: list[int | None] = field(default_factory=list)

    def append(self, *records: Record) -> None:
        for r in records:
            self.logs.setdefault(TopicPartition(r.topic, r.partition), []).append(r)

    def committed(self, tp: TopicPartition) -> int | None:
        for commit in reversed(self.commits):
            if tp in commit:
                offset: int = commit[tp]
                return offset
        return None

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]:
        self.max_records_seen.append(max_records)
        batch: dict[TopicPartition, list[Record]] = {}
        budget = max_records if max_records is not None else 500
        for tp, log in self.logs.items():
            position = self.positions.get(tp, 0)
            records = [r for r in log if r.offset >= position][:budget]
            if records:
                batch[tp] = records
                budget -= len(records)
                self.positions[tp] = records[-1].offset + 1
        if not batch:
            await asyncio.sleep(min(timeout_ms, 10) / 1000)
        return batch

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.commits.append(dict(offsets or {}))

    def assignment(self) -> Set[TopicPartition]:
        return set(self.logs)
