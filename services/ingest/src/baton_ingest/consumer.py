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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Protocol

import structlog
from aiokafka import TopicPartition
from opentelemetry.trace import Span
from pydantic import JsonValue

from baton_common import ids
from baton_common.catalog import StoryCatalog
from baton_common.envelope import Envelope
from baton_common.kafka import ConsumedRecord, OutboundRecord, dead_letter
from baton_common.records import EventReceived
from baton_common.settings import TopicSettings
from baton_common.telemetry import span
from baton_ingest.direct_routes import DirectRoutes
from baton_ingest.intake import IntakeError, read_inbound
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.router import route
from baton_ingest.start_records import start_run_record

__all__ = ["BatchConsumer", "Handled", "IngestRouter"]

log = structlog.get_logger(__name__)

CONSUMER_NAME = "ingest-router"
# Records routed between two yields to the event loop within a batch: ~2 ms of routing,
# so webhooks answered by the same process wait at most that long behind a batch (ADR
# 0260; 500 held them ~10 ms, longer on a busy machine). A yield costs one loop turn.
_YIELD_EVERY = 100


class BatchConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` the router uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Handled:
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
        new_id: Callable[[], str] = ids.uuid4_text,
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
        """Route forever, once the story catalog has caught up; never dies on one record.

        Pipelined: while a batch's records await their acks (and then its commit), the
        next batch is polled, routed and handed to the producer. Commits stay in order
        and each follows its own batch's acks; if anything fails, every batch not yet
        committed is rewound and routed again.
        """
        await self._catalog_ready.wait()
        log.info("ingest router started")
        settling: _Settling | None = None
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                )
            except Exception as exc:
                log.warning("ingest poll failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._backoff)
                continue
            sent: _Sent | None = None
            try:
                if batches:
                    sent = await self._send(batches)
                if settling is not None and (sent is not None or settling.task.done()):
                    await settling.task
                    settling = None
                if sent is not None:
                    settling = _Settling(asyncio.create_task(self._settle(sent)), sent)
            except Exception as exc:
                log.warning("ingest batch failed; rewinding", error=f"{type(exc).__name__}: {exc}")
                unsettled = [settling.sent] if settling is not None else []
                if settling is not None:
                    _discard(settling.task)
                if sent is not None:
                    _discard(sent.acks)
                unsettled.append(sent if sent is not None else _Sent.of(batches))
                settling = None
                self._rewind(unsettled)
                await asyncio.sleep(self._backoff)

    async def process(self, batches: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        """Route one batch: produce every output and wait for acks, then commit."""
        await self._settle(await self._send(batches))

    async def _send(self, batches: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> _Sent:
        """Route a batch and hand its outputs to the producer (acks not awaited)."""
        now = self._clock()
        records = [record for records in batches.values() for record in records]
        handled: list[Handled] = []
        for first in range(0, len(records), _YIELD_EVERY):
            if first:  # let the consumer's heartbeat and the producer's sender run
                await asyncio.sleep(0)
            # Story plans are fixed between two yields (the catalog changes only meanwhile).
            direct = self.direct_routes(now)
            chunk = records[first : first + _YIELD_EVERY]
            handled.extend(map(self.handle, chunk, repeat(now), repeat(direct)))
        outputs = [record for h in handled for record in h.records]
        acks = await self._publisher.send_many(outputs)
        return _Sent.of(batches, handled, acks)

    async def _settle(self, sent: _Sent) -> None:
        """Once a batch's outputs are acknowledged, commit its offsets and count it."""
        await sent.acks
        await self._consumer.commit(sent.ends)
        self._count(sent.handled)

    def direct_routes(self, now: datetime) -> DirectRoutes | None:
        """The batch's direct path (ADR 0230), unless debug logs are on (it logs nothing
        per event)."""
        if log.is_enabled_for(logging.DEBUG):
            return None
        return DirectRoutes(self._catalog, self._topics.commands, now, self._new_id)

    def handle(
        self,
        record: ConsumedRecord,
        now: datetime | None = None,
        direct: DirectRoutes | None = None,
    ) -> Handled:
        """The records to produce for one ``baton.ingest`` record (commands or a dead letter).

        ``now`` is the time of the batch: a record without one gets it, and so do the
        commands it starts. ``direct``, the batch's direct path (:meth:`direct_routes`),
        writes the same records for a record it can take; the general path does the rest.
        """
        now = now or self._clock()
        if direct is not None and (decided := direct.route(record)) is not None:
            outputs, started = decided
            return Handled(outputs, routed=tuple(started))
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
    ) -> Handled:
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
        return Handled(
            records,
            routed=tuple(start.story_id for start in routing.starts),
            skipped=tuple((skip.story_id, skip.reason) for skip in routing.skipped),
        )

    def _count(self, handled: Sequence[Handled]) -> None:
        """Count a produced and committed batch, one metric update per label."""
        routed: Counter[str] = Counter()
        skipped: Counter[tuple[str, str]] = Counter()
        dead: Counter[str] = Counter()
        unmatched = 0
        for h in handled:
            if h.routed:
                for story in h.routed:
                    routed[story] += 1
            elif h.dead_letter is None:
                unmatched += 1
            else:
                dead[h.dead_letter] += 1
            for skip in h.skipped:
                skipped[skip] += 1
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
    ) -> Handled:
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
        return Handled([letter], dead_letter=reason)

    def _rewind(self, unsettled: Sequence[_Sent]) -> None:
        """Seek each partition back to the first offset of the oldest batch not committed."""
        starts: dict[TopicPartition, int] = {}
        for sent in unsettled:  # oldest first
            for tp, offset in sent.starts.items():
                starts.setdefault(tp, offset)
        for tp, offset in starts.items():
            try:
                self._consumer.seek(tp, offset)
            except Exception as exc:  # the partition may have been revoked meanwhile
                log.info("rewind skipped", partition=str(tp), error=str(exc))


@dataclass(frozen=True, slots=True)
class _Sent:
    """A routed batch handed to the producer: where it starts and ends, and its acks."""

    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    handled: list[Handled]
    acks: Awaitable[None]

    @classmethod
    def of(
        cls,
        batches: Mapping[TopicPartition, Sequence[ConsumedRecord]],
        handled: list[Handled] | None = None,
        acks: Awaitable[None] | None = None,
    ) -> _Sent:
        present = {tp: records for tp, records in batches.items() if records}
        return cls(
            {tp: records[0].offset for tp, records in present.items()},
            {tp: records[-1].offset + 1 for tp, records in present.items()},
            handled or [],
            acks if acks is not None else _done(),
        )


@dataclass(frozen=True, slots=True)
class _Settling:
    """The task waiting for a batch's acks and committing it, and that batch."""

    task: asyncio.Task[None]
    sent: _Sent


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def _discard(pending: Awaitable[None]) -> None:
    """Drop an awaitable no one will wait for, without an unretrieved-exception warning."""
    future = asyncio.ensure_future(pending)
    future.cancel()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
