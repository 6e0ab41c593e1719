"""The ingest router loop: ``baton.ingest`` → routing decision → ``StartRun`` commands.

At-least-once: a batch's commands (and dead letters) are acknowledged by Kafka before
its offsets are committed. If anything in a batch fails, the consumer rewinds to the
batch's start and tries again after a pause; run ids are deterministic, so the
scheduler deduplicates what a retry produces twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import uuid4

import structlog
from aiokafka import TopicPartition
from opentelemetry.trace import Span
from pydantic import JsonValue

from baton_common.catalog import StoryCatalog
from baton_common.envelope import Envelope
from baton_common.kafka import ConsumedRecord, OutboundRecord, dead_letter, outbound
from baton_common.records import EventReceived
from baton_common.settings import TopicSettings
from baton_common.telemetry import span
from baton_ingest.intake import IntakeError, read_inbound
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.router import route, start_run_envelope

__all__ = ["BatchConsumer", "IngestRouter"]

log = structlog.get_logger(__name__)

CONSUMER_NAME = "ingest-router"


class BatchConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` the router uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass(frozen=True, slots=True)
class _Handled:
    records: list[OutboundRecord]
    count: Callable[[], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IngestRouter:
    """Turns each ``EventReceived`` into a ``StartRun`` per matching story."""

    def __init__(
        self,
        *,
        consumer: BatchConsumer,
        publisher: Publisher,
        catalog: StoryCatalog,
        catalog_ready: asyncio.Event,
        topics: TopicSettings,
        metrics: IngestMetrics,
        poll_timeout_ms: int = 1000,
        error_backoff_seconds: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = lambda: str(uuid4()),
    ) -> None:
        self._consumer = consumer
        self._publisher = publisher
        self._catalog = catalog
        self._catalog_ready = catalog_ready
        self._topics = topics
        self._metrics = metrics
        self._poll_timeout_ms = poll_timeout_ms
        self._backoff = error_backoff_seconds
        self._clock = clock
        self._new_id = new_id

    async def run(self) -> None:
        """Route forever, once the story catalog has caught up; never dies on one record."""
        await self._catalog_ready.wait()
        log.info("ingest router started")
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=self._poll_timeout_ms)
            except Exception as exc:
                log.warning("ingest poll failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._backoff)
                continue
            if not batches:
                continue
            try:
                await self.process(batches)
            except Exception as exc:
                log.warning("ingest batch failed; rewinding", error=f"{type(exc).__name__}: {exc}")
                self._rewind(batches)
                await asyncio.sleep(self._backoff)

    async def process(self, batches: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        """Route one batch: produce every output and wait for acks, then commit."""
        handled = [self.handle(record) for records in batches.values() for record in records]
        outputs = [record for h in handled for record in h.records]
        await self._publisher.publish_many(outputs)
        await self._consumer.commit(
            {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        )
        for h in handled:
            h.count()

    def handle(self, record: ConsumedRecord) -> _Handled:
        """The records to produce for one ``baton.ingest`` record (commands or a dead letter)."""
        try:
            envelope, event, body = read_inbound(record, self._clock())
        except IntakeError as exc:
            return self._dead_letter(record, exc.reason, exc.detail)
        with span("baton.ingest.route", parent=envelope.traceparent) as routed:
            return self._route(envelope, event, body, routed)

    def _route(
        self,
        envelope: Envelope,
        event: EventReceived,
        body: dict[str, JsonValue],
        routed: Span | None,
    ) -> _Handled:
        routing = route(event, body, envelope.id, self._catalog.active())
        if routed is not None:
            routed.set_attribute("baton.runs_started", len(routing.starts))
        for skip in routing.skipped:
            log.warning(
                "trigger expression failed",
                story=skip.story_id,
                reason=skip.reason,
                detail=skip.detail,
                ingest_id=envelope.id,
            )
        now = self._clock()
        records = [
            outbound(
                self._topics.commands,
                start.run_id,
                start_run_envelope(start, envelope, id=self._new_id(), time=now),
            )
            for start in routing.starts
        ]
        if routing.starts:
            log.debug(
                "event routed",
                ingest_id=envelope.id,
                path=event.path,
                runs={s.story_id: s.run_id for s in routing.starts},
            )
        else:
            log.debug("event matched no story", ingest_id=envelope.id, path=event.path)

        def count() -> None:
            for skip in routing.skipped:
                self._metrics.trigger_errors.labels(story=skip.story_id, reason=skip.reason).inc()
            for start in routing.starts:
                self._metrics.routed.labels(story=start.story_id).inc()
            if not routing.starts:
                self._metrics.unmatched.inc()

        return _Handled(records, count)

    def _dead_letter(self, record: ConsumedRecord, reason: str, detail: str) -> _Handled:
        log.warning(
            "ingest record dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=detail,
        )
        letter = dead_letter(
            record,
            dlq_topic=self._topics.dlq,
            consumer=CONSUMER_NAME,
            reason=detail,
            time=self._clock(),
        )
        return _Handled([letter], lambda: self._metrics.dead_letters.labels(reason=reason).inc())

    def _rewind(self, batches: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        for tp, records in batches.items():
            if not records:
                continue
            try:
                self._consumer.seek(tp, records[0].offset)
            except Exception as exc:  # the partition may have been revoked meanwhile
                log.info("rewind skipped", partition=str(tp), error=str(exc))
