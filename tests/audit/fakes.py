"""Run logs and in-memory stand-ins for Kafka in audit tests (PostgreSQL is always real)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from baton_audit.publish import PublishError
from baton_common.envelope import Envelope, decode_record
from baton_common.events import (
    ApprovalGranted,
    ApprovalRequested,
    RunEvent,
    RunStarted,
    RunSucceeded,
    StepDispatched,
    StepSucceeded,
)
from baton_common.hashing import GENESIS, chain_hash
from baton_common.kafka import ConsumedRecord, OutboundRecord, outbound, to_envelope

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "baton.runs"
STORIES_TOPIC = "baton.stories"
STORY = "phishing-triage"


@dataclass
class FakePublisher:
    records: list[OutboundRecord] = field(default_factory=list)
    failing: bool = False

    async def publish(self, record: OutboundRecord) -> None:
        if self.failing:
            raise PublishError("KafkaConnectionError: no broker available")
        self.records.append(record)

    def envelopes(self) -> list[Envelope]:
        return [decode_record(r.value, r.headers) for r in self.records]


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class FakeConsumer:
    seeks: dict[TopicPartition, int] = field(default_factory=dict)
    beginnings: list[TopicPartition] = field(default_factory=list)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumedRecord]]:
        return {}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool:
        self.beginnings.extend(partitions)
        return True

    def assignment(self) -> set[TopicPartition]:
        return set(self.seeks) | set(self.beginnings)


def chain(
    run_id: str, events: list[RunEvent], *, start: datetime = T0, first_seq: int = 1
) -> list[Envelope]:
    """A run's log as the scheduler writes it: numbered, hash-chained envelopes."""
    previous = GENESIS
    log: list[Envelope] = []
    for seq, event in enumerate(events, first_seq):
        envelope = to_envelope(
            event,
            id=f"{run_id}-e{seq}",
            source="baton/scheduler",
            time=start + timedelta(minutes=seq),
            subject=run_id,
            storyid=STORY,
            storyversion=4,
            causationid=f"{run_id}-cmd{seq}",
            correlationid=f"corr-{run_id}",
            actor="scheduler",
            seq=seq,
            prevhash=previous,
        )
        envelope = envelope.model_copy(update={"hash": chain_hash(envelope)})
        previous = envelope.hash or ""
        log.append(envelope)
    return log


def records(
    envelopes: list[Envelope], *, partition: int = 0, first_offset: int = 0
) -> list[ConsumedRecord]:
    out: list[ConsumedRecord] = []
    for offset, envelope in enumerate(envelopes, first_offset):
        o = outbound(TOPIC, envelope.subject, envelope)
        out.append(FakeRecord(TOPIC, partition, offset, o.key, o.value, tuple(o.headers)))
    return out


def garbage(offset: int, *, partition: int = 0) -> ConsumedRecord:
    return FakeRecord(TOPIC, partition, offset, b"k", b"{}", (("ce_id", b"x"),))


def approved_run(run_id: str = "r1", *, start: datetime = T0) -> list[Envelope]:
    """Started, one step, an approval granted by alice, succeeded."""
    return chain(
        run_id,
        [
            RunStarted(
                run_id=run_id,
                story_id=STORY,
                story_version=4,
                trigger={"alert_id": "A-1"},
                dedup_key="A-1",
            ),
            StepDispatched(
                run_id=run_id,
                step="verdict",
                attempt=1,
                attempt_id="att-1",
                action="ai.classify",
                queue="ai",
                input={"prompt": "?"},
            ),
            StepSucceeded(
                run_id=run_id,
                step="verdict",
                attempt=1,
                attempt_id="att-1",
                output={"label": "malicious", "confidence": 0.7},
            ),
            ApprovalRequested(
                run_id=run_id,
                step="review",
                gate_id=f"gate-{run_id}",
                approvers=["group:secops-oncall"],
                message="contain?",
            ),
            ApprovalGranted(
                run_id=run_id,
                step="review",
                gate_id=f"gate-{run_id}",
                approver="alice",
                comment="yes",
            ),
            RunSucceeded(run_id=run_id),
        ],
        start=start,
    )
