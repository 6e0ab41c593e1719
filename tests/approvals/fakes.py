"""In-memory stand-ins for Kafka in approvals tests (PostgreSQL is always real)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import TopicPartition

from baton_approvals.consumer import Projector
from baton_approvals.db import Pool, create_pool
from baton_approvals.settings import ApprovalsSettings
from baton_approvals.store import apply_record
from baton_common.envelope import Envelope, decode_record
from baton_common.kafka import ConsumedRecord, OutboundRecord, outbound, to_envelope
from baton_common.publishing import PublishError
from baton_common.records import GateClosed, GateOpened
from baton_common.testing import Record as FakeRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "baton.tasks.approvals"


@dataclass
class FakePublisher:
    """Keeps what is published; ``failing`` makes it behave like an unreachable Kafka."""

    records: list[OutboundRecord] = field(default_factory=list)
    failing: bool = False

    async def publish(self, record: OutboundRecord) -> None:
        if self.failing:
            raise PublishError("KafkaConnectionError: no broker available")
        self.records.append(record)

    def envelopes(self, topic: str) -> list[Envelope]:
        return [decode_record(r.value, r.headers) for r in self.records if r.topic == topic]


def record_of(envelope: Envelope, offset: int, *, partition: int = 0) -> ConsumedRecord:
    out = outbound(TOPIC, envelope.subject, envelope)
    return FakeRecord(TOPIC, partition, offset, out.key, out.value, tuple(out.headers))


def garbage(offset: int, *, partition: int = 0) -> ConsumedRecord:
    return FakeRecord(TOPIC, partition, offset, b"k", b"not json", (("ce_type", b"x"),))


def opened(
    gate_id: str = "gate-1",
    *,
    run_id: str = "run-1",
    approvers: list[str] | None = None,
    event_id: str | None = None,
    time: datetime = T0,
    excluded: list[str] | None = None,
) -> Envelope:
    payload = GateOpened(
        excluded=excluded or [],
        run_id=run_id,
        story_id="phishing-triage",
        story_version=4,
        step="review",
        gate_id=gate_id,
        approvers=approvers if approvers is not None else ["group:secops-oncall", "carol"],
        message="contain the host?",
    )
    return to_envelope(
        payload,
        id=event_id or f"open-{gate_id}",
        source="baton/scheduler",
        time=time,
        subject=run_id,
        storyid="phishing-triage",
        storyversion=4,
        correlationid=f"corr-{run_id}",
        causationid="cmd-0",
    )


def closed(
    gate_id: str = "gate-1",
    *,
    run_id: str = "run-1",
    outcome: str = "approved",
    approver: str | None = "alice",
    time: datetime = T0,
) -> Envelope:
    payload = GateClosed.model_validate(
        {
            "run_id": run_id,
            "gate_id": gate_id,
            "outcome": outcome,
            "approver": approver,
            "comment": "ok",
        }
    )
    return to_envelope(
        payload, id=f"close-{gate_id}", source="baton/scheduler", time=time, subject=run_id
    )


@dataclass
class FakeConsumer:
    """A consumer over an in-memory log that remembers the seeks made on it."""

    log: dict[TopicPartition, list[ConsumedRecord]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    seeks: dict[TopicPartition, int] = field(default_factory=dict)
    beginnings: list[TopicPartition] = field(default_factory=list)
    poll_errors: int = 0

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumedRecord]]:
        await asyncio.sleep(0.01)
        if self.poll_errors:
            self.poll_errors -= 1
            raise ConnectionError("broker went away")
        batches: dict[TopicPartition, list[ConsumedRecord]] = {}
        for tp, records in self.log.items():
            batch = [r for r in records if r.offset >= self.positions.get(tp, 0)]
            if batch:
                batches[tp] = batch
                self.positions[tp] = batch[-1].offset + 1
        return batches

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset
        self.positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        self.beginnings.extend(partitions)
        for tp in partitions:
            self.positions[tp] = 0
        return True


def inbox_projector(pool: Pool) -> Projector:
    """The approvals service's projector of ``baton.tasks.approvals`` onto ``pool``'s inbox,
    with fake Kafka clients."""
    return Projector(
        consumer=FakeConsumer(),
        pool=pool,
        handle=apply_record,
        publisher=FakePublisher(),
        name="approvals",
        dlq_topic="baton.dlq",
    )


async def project_gates(settings: ApprovalsSettings, envelopes: list[Envelope]) -> None:
    """Apply gate records to the inbox in ``settings``' schema, as the projection does."""
    pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
    try:
        records = [record_of(e, offset) for offset, e in enumerate(envelopes)]
        await inbox_projector(pool).apply_batch(TOPIC, 0, records)
    finally:
        await pool.close()
