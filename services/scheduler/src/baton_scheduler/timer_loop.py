"""The timer loop: appends ``FireTimer`` commands when run timers come due.

Time enters the log only as commands (DESIGN.md rule 2). The loop holds no state of
its own that matters: it watches the timers in the run states (rebuilt from the log
on recovery), so timers survive restarts. A ``FireTimer``'s envelope id derives from
its timer id, and the decider ignores a timer the run no longer holds, so a resend
after a crash, or after ``resend_seconds`` without effect, fires nothing twice.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from baton_common import ids
from baton_common.commands import FireTimer
from baton_common.kafka import outbound, to_envelope
from baton_common.state import RunState
from baton_scheduler import metrics
from baton_scheduler.store import RunStore

__all__ = ["TimerLoop"]

log = structlog.get_logger(__name__)

SOURCE = "baton/scheduler/timers"


class TimerLoop:
    """Watches the pending timers of the runs in ``store`` and fires the due ones."""

    def __init__(
        self,
        store: RunStore,
        producer: AIOKafkaProducer,
        commands_topic: str,
        *,
        resend_seconds: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._producer = producer
        self._topic = commands_topic
        self._resend = timedelta(seconds=resend_seconds)
        self._clock = clock
        self._heap: list[tuple[datetime, str, str]] = []  # (due, timer id, run id)
        self._watched: set[str] = set()
        self._wake = asyncio.Event()

    def track(self, states: Iterable[RunState]) -> None:
        """Watch the timers of these (new or changed) run states."""
        added = False
        for state in states:
            for timer_id, timer in state.timers.items():
                if timer_id not in self._watched:
                    self._watched.add(timer_id)
                    heapq.heappush(self._heap, (timer.fire_at, timer_id, state.run_id))
                    added = True
        metrics.TIMERS_PENDING.set(len(self._watched))
        if added:
            self._wake.set()

    async def run(self) -> None:
        """Fire due timers until cancelled."""
        while True:
            await self.fire_due()
            await self._sleep()

    async def fire_due(self) -> int:
        """Append a ``FireTimer`` for every due timer its run still holds; return how many."""
        now = self._clock()
        fired = 0
        while self._heap and self._heap[0][0] <= now:
            _, timer_id, run_id = heapq.heappop(self._heap)
            state = self._store.get(run_id)
            timer = state.timers.get(timer_id) if state is not None else None
            partition = self._store.partition_of(run_id)
            if state is None or timer is None or partition is None:
                self._watched.discard(timer_id)  # fired, moot, or the run moved elsewhere
                continue
            command = FireTimer(
                run_id=run_id,
                timer_id=timer_id,
                kind=timer.kind,
                step=timer.step,
                attempt=timer.attempt,
                fire_at=timer.fire_at,
            )
            envelope = to_envelope(
                command,
                id=ids.fire_command_id(timer_id),
                source=SOURCE,
                time=now,
                subject=run_id,
                storyid=state.story_id,
                storyversion=state.story_version,
                correlationid=run_id,
                actor="baton/scheduler",
            )
            record = outbound(self._topic, run_id, envelope, partition=partition)
            try:
                await record.send(self._producer)
            except KafkaError as exc:
                log.warning(
                    "could not append FireTimer; retrying", timer_id=timer_id, error=repr(exc)
                )
                heapq.heappush(self._heap, (now + timedelta(seconds=1), timer_id, run_id))
                break
            fired += 1
            metrics.TIMERS_FIRED.labels(kind=timer.kind).inc()
            log.info("timer fired", run_id=run_id, timer_id=timer_id, kind=timer.kind)
            # look again later: if the run still holds it then, the command was lost or early
            heapq.heappush(self._heap, (now + self._resend, timer_id, run_id))
        metrics.TIMERS_PENDING.set(len(self._watched))
        return fired

    async def _sleep(self) -> None:
        if self._heap:
            wait = (self._heap[0][0] - self._clock()).total_seconds()
            timeout = min(max(wait, 0.005), 1.0)
        else:
            timeout = 1.0
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()
