"""The schedule loop: scheduled stories' ticks → ``StartRun`` on ``baton.commands``.

Every ingest replica runs it and fires every tick; a tick's run id is derived from the
story and the tick time, so the scheduler starts one run and answers the rest with
``RunDeduplicated`` (ADR 0200). After a tick's commands are acknowledged, the replica
records how far it has handled the story's ticks on the compacted ``baton.schedules``
topic; a replica starting up resumes from there and applies the story's ``catch_up``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import structlog
from pydantic import ValidationError

from baton_common.catalog import StoryCatalog
from baton_common.envelope import EnvelopeError, decode_record
from baton_common.expressions import ExpressionError, evaluate_condition
from baton_common.kafka import ConsumedRecord, OutboundRecord, outbound, to_envelope
from baton_common.records import ScheduleCursor
from baton_common.settings import TopicSettings
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import Publisher
from baton_ingest.schedule import due_ticks, tick_start, ticks_between

__all__ = ["Ticker", "load_cursors"]

log = structlog.get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def load_cursors(records: Iterable[ConsumedRecord]) -> dict[str, datetime]:
    """The furthest ``handled_through`` per story among ``baton.schedules`` records."""
    cursors: dict[str, datetime] = {}
    for record in records:
        try:
            cursor = ScheduleCursor.model_validate(decode_record(record.value, record.headers).data)
        except (EnvelopeError, ValidationError) as exc:
            log.warning("schedule cursor skipped", offset=record.offset, reason=str(exc))
            continue
        previous = cursors.get(cursor.story_id)
        if previous is None or cursor.handled_through > previous:
            cursors[cursor.story_id] = cursor.handled_through
    return cursors


class Ticker:
    """Fires the due ticks of every active scheduled story, every ``interval`` seconds."""

    def __init__(
        self,
        *,
        catalog: StoryCatalog,
        catalog_ready: asyncio.Event,
        publisher: Publisher,
        topics: TopicSettings,
        metrics: IngestMetrics,
        cursors: dict[str, datetime],
        interval: float = 1.0,
        grace: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = lambda: str(uuid4()),
    ) -> None:
        self._catalog = catalog
        self._catalog_ready = catalog_ready
        self._publisher = publisher
        self._topics = topics
        self._metrics = metrics
        self._cursors = cursors
        self._interval = interval
        self._grace = grace
        self._clock = clock
        self._new_id = new_id

    async def run(self) -> None:
        """Tick forever; a failed round is retried on the next one (cursors not advanced)."""
        await self._catalog_ready.wait()
        log.info("schedule loop started", resumed=len(self._cursors))
        while True:
            try:
                await self.fire_due()
            except Exception as exc:
                log.warning("schedule round failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._interval)

    async def fire_due(self) -> int:
        """Fire what is due now for every scheduled story; return how many ticks fired."""
        now = self._clock()
        fired = 0
        for story in self._catalog.active():
            schedule = story.trigger.schedule
            if schedule is None:
                continue
            cursor = self._cursors.get(story.id)
            if cursor is None:  # first sight, and nothing recorded: start from now
                self._cursors[story.id] = now
                continue
            if not ticks_between(schedule, cursor, now, limit=1):
                continue
            records: list[OutboundRecord] = []
            ticks = due_ticks(schedule, cursor, now, self._grace)
            for tick in ticks:
                start = tick_start(story, tick)
                if story.trigger.when is not None:
                    try:
                        if not evaluate_condition(story.trigger.when, {"event": start.trigger}):
                            continue
                    except ExpressionError as exc:
                        log.warning("schedule condition failed", story=story.id, detail=str(exc))
                        continue
                envelope = to_envelope(
                    start,
                    id=self._new_id(),
                    source="baton/ingest/schedule",
                    time=now,
                    subject=start.run_id,
                    storyid=start.story_id,
                    storyversion=start.story_version,
                    actor="schedule",
                    correlationid=start.run_id,
                )
                records.append(outbound(self._topics.commands, start.run_id, envelope))
            cursor_envelope = to_envelope(
                ScheduleCursor(story_id=story.id, handled_through=now),
                id=self._new_id(),
                source="baton/ingest/schedule",
                time=now,
            )
            await asyncio.gather(*(self._publisher.publish(r) for r in records))
            # Only once the StartRuns are durable does the cursor move past their ticks.
            await self._publisher.publish(
                outbound(self._topics.schedules, story.id, cursor_envelope)
            )
            self._cursors[story.id] = now
            skipped = len(ticks_between(schedule, cursor, now)) - len(ticks)  # capped
            self._metrics.schedule_ticks.labels(story=story.id).inc(len(records))
            log.info(
                "schedule ticks fired",
                story=story.id,
                ticks=[t.isoformat() for t in ticks],
                skipped_by_catch_up=skipped,
            )
            fired += len(records)
        return fired
