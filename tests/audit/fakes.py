"""Run logs and in-memory stand-ins for Kafka in audit tests (PostgreSQL is always real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import JsonValue

from baton_audit.consumer import PositionListener, Projector, RecordHandler
from baton_audit.db import Pool
from baton_audit.settings import AuditSettings
from baton_audit.writer import AuditWriter
from baton_common.envelope import Envelope, decode_record
from baton_common.events import (
    ApprovalGranted,
    ApprovalRequested,
    RunEvent,
    RunStarted,
    RunSucceeded,
    StepDispatched,
    StepFailed,
    StepSucceeded,
)
from baton_common.hashing import GENESIS, chain_hash
from baton_common.kafka import (
    ConsumedRecord,
    OutboundRecord,
    make_consumer,
    outbound,
    to_envelope,
)
from baton_common.publishing import PublishError
from baton_common.records import StoryPublished
from baton_common.story import parse_story
from baton_common.testing import Record as FakeRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "baton.runs"
STORIES_TOPIC = "baton.stories"
# As the service runs (run rows kept between batches, ADR 0530).
KEPT_RUNS = AuditSettings.model_fields["kept_runs"].default
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
class FakeConsumer:
    seeks: dict[TopicPartition, int] = field(default_factory=dict)
    beginnings: list[TopicPartition] = field(default_factory=list)
    polled_max_records: list[int | None] = field(default_factory=list)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumedRecord]]:
        self.polled_max_records.append(max_records)
        await asyncio.sleep(0)
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


STORY_YAML = """\
id: phishing-triage
version: {version}
owner: secops
trigger:
  webhook: {{path: edr-alerts}}
steps:
  verdict:
    action: http
    with: {{url: "https://example.invalid/classify"}}
"""


def story_records(
    *versions: int, partition: int = 0, first_offset: int = 0
) -> list[ConsumedRecord]:
    """``StoryPublished`` records of phishing-triage, one per version."""
    out: list[ConsumedRecord] = []
    for offset, version in enumerate(versions, first_offset):
        source = STORY_YAML.format(version=version)
        envelope = to_envelope(
            StoryPublished(story=parse_story(source), source=source),
            id=f"story-{version}",
            source="baton/cli",
            time=T0 + timedelta(days=version),
            subject=f"{STORY}:{version}",
            storyid=STORY,
            storyversion=version,
        )
        o = outbound(STORIES_TOPIC, f"{STORY}:{version}", envelope)
        out.append(FakeRecord(STORIES_TOPIC, partition, offset, o.key, o.value, tuple(o.headers)))
    return out


AI_OUTPUT: dict[str, JsonValue] = {
    "label": "malicious",
    "confidence": 0.7,
    "ai": {
        "provider": "openai-compatible",
        "model": "small-model",
        "prompt": [{"role": "user", "content": "Is this phishing?"}],
        "response": {"label": "malicious"},
        "tool_calls": [],
        "usage": {"input_tokens": 120, "output_tokens": 9},
    },
}


def triage_run(run_id: str = "t1", *, start: datetime = T0) -> list[Envelope]:
    """A lookup that fails once and is retried, an AI verdict, an approval, success."""
    return chain(
        run_id,
        [
            RunStarted(run_id=run_id, story_id=STORY, story_version=4, trigger={"alert_id": "A-9"}),
            StepDispatched(
                run_id=run_id,
                step="lookup",
                attempt=1,
                attempt_id=f"{run_id}-lookup-1",
                action="http",
                queue="default",
                input={"url": "https://example.invalid/a"},
            ),
            StepFailed(
                run_id=run_id,
                step="lookup",
                attempt=1,
                attempt_id=f"{run_id}-lookup-1",
                error_kind="retryable",
                error_type="http.503",
                message="HTTP 503",
                will_retry=True,
            ),
            StepDispatched(
                run_id=run_id,
                step="lookup",
                attempt=2,
                attempt_id=f"{run_id}-lookup-2",
                action="http",
                queue="default",
                input={"url": "https://example.invalid/a"},
            ),
            StepSucceeded(
                run_id=run_id,
                step="lookup",
                attempt=2,
                attempt_id=f"{run_id}-lookup-2",
                output={"status": 200},
            ),
            StepDispatched(
                run_id=run_id,
                step="verdict",
                attempt=1,
                attempt_id=f"{run_id}-verdict-1",
                action="ai.classify",
                queue="ai",
                input={"prompt": "Is this phishing?"},
            ),
            StepSucceeded(
                run_id=run_id,
                step="verdict",
                attempt=1,
                attempt_id=f"{run_id}-verdict-1",
                output=AI_OUTPUT,
            ),
            ApprovalRequested(
                run_id=run_id,
                step="review",
                gate_id=f"gate-{run_id}",
                approvers=["group:secops-oncall"],
            ),
            ApprovalGranted(run_id=run_id, step="review", gate_id=f"gate-{run_id}", approver="bob"),
            RunSucceeded(run_id=run_id),
        ],
        start=start,
    )


def projector_on(pool: Pool, handle: RecordHandler | None = None) -> Projector:
    """The audit projection over ``pool``, fed by hand (``apply_batch``) instead of Kafka;
    ``handle`` defaults to the service's writer (with kept run rows, as the service runs)."""
    if handle is None:
        handle = AuditWriter(
            runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=KEPT_RUNS
        ).apply
    return Projector(
        consumer=FakeConsumer(),
        pool=pool,
        handle=handle,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
    )


@asynccontextmanager
async def consuming(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    pool: Pool,
    handle: RecordHandler,
    *,
    max_records: int | None = None,
) -> AsyncIterator[tuple[Projector, AIOKafkaConsumer]]:
    """The audit projection over ``pool`` fed by a real consumer of ``group``, running (as
    the service wires it) until the block ends."""
    consumer = make_consumer(bootstrap, group_id=group, client_id=f"{group}-projector")
    projector = Projector(
        consumer=consumer,
        pool=pool,
        handle=handle,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
        max_records=max_records,
    )
    consumer.subscribe(list(topics), listener=PositionListener(projector))
    await consumer.start()
    try:
        projector.start()
        yield projector, consumer
    finally:
        await projector.stop()
        await consumer.stop()
