"""The ingest router loop: ``baton.ingest`` → routing decision → ``StartRun`` commands.

At-least-once: a batch's commands (and dead letters) are acknowledged by Kafka before
its offsets are committed. If anything in a batch fails, the consumer rewinds to the
batch's start and tries again after a pause; run ids are deterministic, so the
scheduler deduplicates what a retry produces twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
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
from baton_common.kafka import ConsumedRecord, OutboundRecord, dead_letter
from baton_common.records import EventReceived
from baton_common.settings import TopicSettings
from baton_common.telemetry import span
from baton_ingest.intake import IntakeError, read_inbound
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.router import route
from baton_ingest.start_records import start_run_record

__all__ = ["BatchConsumer", "IngestRouter"]

log = structlog.get_logger(__name__)

CONSUMER_NAME = "ingest-router"
_YIELD_EVERY = 500  # records routed between two yields to the event loop within a batch


class BatchConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` the router uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass(frozen=True, slots=True)
class _Handled:
    """What one record turned into: records to produce, and what to count once they are."""

    records: list[OutboundRecord]
    routed: tuple[str, ...] = ()  # the story ids started
    skipped: tuple[tuple[str, str], ...] = ()  # (story id, reason)
    dead_letter: str | None = None  # the reason code


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
        max_records: int = 5000,
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
        self._max_records = max_records
        self._backoff = error_backoff_seconds
        self._clock = clock
        self._new_id = new_id

    async def run(self) -> None:
        """Route forever, once the story catalog has caught up; never dies on one record."""
        await self._catalog_ready.wait()
        log.info("ingest router started")
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                )
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
        now = self._clock()
        records = [record for records in batches.values() for record in records]
        handled: list[_Handled] = []
        for first in range(0, len(records), _YIELD_EVERY):
            if first:  # let the consumer's heartbeat and the producer's sender run
                await asyncio.sleep(0)
            handled.extend(self.handle(r, now) for r in records[first : first + _YIELD_EVERY])
        outputs = [record for h in handled for record in h.records]
        await self._publisher.publish_many(outputs)
        await self._consumer.commit(
            {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        )
        self._count(handled)

    def handle(self, record: ConsumedRecord, now: datetime | None = None) -> _Handled:
        """The records to produce for one ``baton.ingest`` record (commands or a dead letter).

        ``now`` is the time of the batch: a record without one gets it, and so do the
        commands it starts.
        """
        now = now or self._clock()
        try:
            envelope, event, body = read_inbound(record, now)
        except IntakeError as exc:
            return self._dead_letter(record, exc.reason, exc.detail, now)
        with span("baton.ingest.route", parent=envelope.traceparent) as routed:
            return self._route(envelope, event, body, routed, now)

    def _route(
        self,
        envelope: Envelope,
        event: EventReceived,
        body: dict[str, JsonValue],
        routed: Span | None,
        now: datetime,
    ) -> _Handled:
        stories = self._catalog.for_webhook(event.path) if event.path is not None else []
        routing = route(event, body, envelope.id, stories)
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
        records = [
            start_run_record(self._topics.commands, start, envelope, id=self._new_id(), time=now)
            for start in routing.starts
        ]
        if log.is_enabled_for(logging.DEBUG):
            if routing.starts:
                log.debug(
                    "event routed",
                    ingest_id=envelope.id,
                    path=event.path,
                    runs={s.story_id: s.run_id for s in routing.starts},
                )
            else:
                log.debug("event matched no story", ingest_id=envelope.id, path=event.path)
        return _Handled(
            records,
            routed=tuple(start.story_id for start in routing.starts),
            skipped=tuple((skip.story_id, skip.reason) for skip in routing.skipped),
        )

    def _count(self, handled: Sequence[_Handled]) -> None:
        """Count a produced and committed batch, one metric update per label."""
        routed: Counter[str] = Counter()
        skipped: Counter[tuple[str, str]] = Counter()
        dead: Counter[str] = Counter()
        unmatched = 0
        for h in handled:
            routed.update(h.routed)
            skipped.update(h.skipped)
            if h.dead_letter is not None:
                dead[h.dead_letter] += 1
            elif not h.routed:
                unmatched += 1
        for story, n in routed.items():
            self._metrics.routed.labels(story=story).inc(n)
        for (story, reason), n in skipped.items():
            self._metrics.trigger_errors.labels(story=story, reason=reason).inc(n)
        for reason, n in dead.items():
            self._metrics.dead_letters.labels(reason=reason).inc(n)
        if unmatched:
            self._metrics.unmatched.inc(unmatched)

    def _dead_letter(
        self, record: ConsumedRecord, reason: str, detail: str, now: datetime
    ) -> _Handled:
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
            time=now,
        )
        return _Handled([letter], dead_letter=reason)

    def _rewind(self, batches: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        for tp, records in batches.items():
            if not records:
                continue
            try:
                self._consumer.seek(tp, records[0].offset)
            except Exception as exc:  # the partition may have been revoked meanwhile
                log.info("rewind skipped", partition=str(tp), error=str(exc))
