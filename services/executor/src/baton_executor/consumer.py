"""The executor loop: ``baton.tasks.<queue>`` → action → ``CompleteStep``/``FailStep``.

Up to ``concurrency`` attempts run at once, from any partitions. Each attempt's command
is acknowledged by Kafka before its record counts as finished, and a partition's offset
is committed only up to its oldest unfinished record, so a crash redelivers (never loses)
the work in flight. Redelivered attempts keep their attempt id, which outside systems see
as the idempotency key and the scheduler uses to ignore a second result.

A redelivered record whose attempt this process already reported is not run again (a
bounded cache of recent attempt ids), and one whose attempt is still running here waits
for that run instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

from baton_common.commands import CompleteStep
from baton_common.envelope import Envelope
from baton_common.ids import uuid4_text
from baton_common.kafka import ConsumedRecord, OutboundRecord, dead_letter
from baton_common.records import StepTask
from baton_common.settings import TopicSettings
from baton_common.telemetry import SpanKind, span
from baton_executor.actions import Action
from baton_executor.execution import command_record, execute
from baton_executor.log_context import AttemptLogContext
from baton_executor.metrics import ExecutorMetrics
from baton_executor.offsets import OffsetTracker, Pending
from baton_executor.publisher import Publisher
from baton_executor.secrets import SecretStore
from baton_executor.task_records import TaskRejected, read_task

__all__ = ["Executor", "RebalanceListener", "TaskConsumer"]

log = structlog.get_logger(__name__)

CONSUMER_NAME = "executor"
_MAX_PUBLISH_BACKOFF = 30.0


class TaskConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` the executor uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[ConsumedRecord]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...

    def assignment(self) -> Set[TopicPartition]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Executor:
    """Runs step tasks concurrently and reports each outcome as a command."""

    def __init__(
        self,
        *,
        consumer: TaskConsumer,
        publisher: Publisher,
        actions: Mapping[str, Action],
        topics: TopicSettings,
        metrics: ExecutorMetrics,
        concurrency: int = 16,
        max_output_bytes: int = 512 * 1024,
        poll_timeout_ms: int = 1000,
        error_backoff_seconds: float = 1.0,
        revoke_grace_seconds: float = 5.0,
        secrets: SecretStore | None = None,
        recent_attempts: int = 10_000,
        commit_interval_seconds: float = 0.2,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = uuid4_text,
    ) -> None:
        self._consumer = consumer
        self._publisher = publisher
        self._actions = actions
        self._topics = topics
        self._metrics = metrics
        self._concurrency = concurrency
        self._max_output_bytes = max_output_bytes
        self._poll_timeout_ms = poll_timeout_ms
        self._backoff = error_backoff_seconds
        self._revoke_grace = revoke_grace_seconds
        self._clock = clock
        self._new_id = new_id
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._running: dict[asyncio.Task[None], TopicPartition] = {}
        self._secrets = secrets or SecretStore({})
        self._recent_limit = recent_attempts
        self._commit_interval = commit_interval_seconds
        self._last_commit = 0.0
        self._reported: OrderedDict[str, None] = OrderedDict()
        # Attempts running here, with the event redeliveries of them wait on (if any).
        self._in_progress: dict[str, asyncio.Event | None] = {}
        self._log_context = AttemptLogContext()
        self._slot_freed = asyncio.Event()
        # Read when scraped, rather than set twice per attempt.
        metrics.in_flight.set_function(lambda: len(self._running))

    @property
    def running(self) -> int:
        """Attempts in flight."""
        return len(self._running)

    async def run(self) -> None:
        """Poll, run and commit forever; a Kafka error pauses the loop, never ends it."""
        log.info("executor started", concurrency=self._concurrency)
        while True:
            try:
                await self.poll_once()
            except Exception as exc:
                log.warning("executor loop error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self._backoff)

    async def poll_once(self) -> None:
        """Start new attempts if there is room (else wait for one to end), then commit."""
        room = self._concurrency - len(self._running)
        if room > 0:
            # While attempts run, poll briefly so their offsets get committed promptly.
            timeout = min(self._poll_timeout_ms, 100) if self._running else self._poll_timeout_ms
            batches = await self._consumer.getmany(timeout_ms=timeout, max_records=room)
            for partition, records in batches.items():
                for record in records:
                    self._start(partition, record)
        else:
            # Woken by _finished; cheaper than asyncio.wait over every running task, which
            # adds and removes a callback on each of them for every attempt that ends.
            self._slot_freed.clear()
            await self._slot_freed.wait()
        # A commit is a broker round trip: at most one per interval, not one per attempt.
        # Crashes redeliver at most an interval's worth of reported attempts.
        if time.monotonic() - self._last_commit >= self._commit_interval:
            await self._commit()

    async def partitions_revoked(self, revoked: Set[TopicPartition]) -> None:
        """Before a rebalance takes partitions away: let their attempts finish, commit."""
        tasks = [task for task, partition in self._running.items() if partition in revoked]
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=self._revoke_grace)
            if unfinished:
                # They run on and report; the new owner repeats them with the same attempt ids.
                log.info("attempts still running at revocation", count=len(unfinished))
        try:
            await self._commit(revoked)
        except Exception as exc:
            log.warning("commit on revocation failed", error=f"{type(exc).__name__}: {exc}")
        self._tracker.forget(revoked)

    async def drain(self, grace: float) -> None:
        """On shutdown: wait up to ``grace`` seconds for running attempts, cancel the rest
        (they will be redelivered), and commit what finished."""
        tasks = list(self._running)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=grace) if grace > 0 else ((), tasks)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            await self._commit()
        except Exception as exc:
            log.warning("final commit failed", error=f"{type(exc).__name__}: {exc}")

    def _start(self, partition: TopicPartition, record: ConsumedRecord) -> None:
        pending = self._tracker.start(partition, record.offset)
        # topic/partition@offset: a TopicPartition's repr is a Python-level namedtuple repr
        name = f"attempt {partition.topic}/{partition.partition}@{record.offset}"
        task = asyncio.create_task(self.handle(record), name=name)
        self._running[task] = partition
        task.add_done_callback(lambda t: self._finished(t, pending))

    def _finished(self, task: asyncio.Task[None], pending: Pending) -> None:
        self._running.pop(task, None)
        self._slot_freed.set()
        if task.cancelled():
            return  # not reported: the record stays uncommitted and is redelivered
        if (exc := task.exception()) is not None:
            # handle() reports every outcome itself; this is a bug. Move on rather than
            # hold the partition's commits back forever.
            log.error("task handling crashed", exc_info=exc)
        self._tracker.finish(pending)

    async def _commit(self, partitions: Set[TopicPartition] | None = None) -> None:
        offsets = self._tracker.uncommitted(partitions)
        if partitions is None:
            self._last_commit = time.monotonic()
        if offsets:
            await self._consumer.commit(offsets)
            self._tracker.committed(offsets)

    async def handle(self, record: ConsumedRecord) -> None:
        """Run one task record and publish its command (or its dead letter)."""
        try:
            envelope, task = read_task(record.value, record.headers)
        except TaskRejected as exc:
            await self._dead_letter(record, exc.reason, exc.detail)
            return
        tokens = self._log_context.bind(task)
        try:
            running = self._in_progress
            while task.attempt_id in running:  # delivered again while it runs here
                waiter = running[task.attempt_id]
                if waiter is None:  # made only when needed: redeliveries are rare
                    waiter = running[task.attempt_id] = asyncio.Event()
                await waiter.wait()
            if task.attempt_id in self._reported:
                self._metrics.duplicates.inc()
                log.info("attempt already reported; redelivery not run again")
                return
            running[task.attempt_id] = None
            try:
                await self._attempt(task, envelope)
            finally:
                if (waiter := running.pop(task.attempt_id)) is not None:
                    waiter.set()
        finally:
            self._log_context.reset(tokens)

    def _remember(self, attempt_id: str) -> None:
        self._reported[attempt_id] = None
        while len(self._reported) > self._recent_limit:
            self._reported.popitem(last=False)

    async def _attempt(self, task: StepTask, envelope: Envelope) -> None:
        with span(
            "baton.executor.attempt",
            parent=envelope.traceparent,
            kind=SpanKind.CONSUMER,
            attributes={
                "baton.run_id": task.run_id,
                "baton.story_id": task.story_id,
                "baton.step": task.step,
                "baton.attempt": task.attempt,
                "baton.action": task.action,
            },
        ) as current:
            outcome = await self._run_attempt(task, envelope)
            if current is not None:
                current.set_attribute("baton.outcome", outcome)

    async def _run_attempt(self, task: StepTask, envelope: Envelope) -> str:
        label = task.action if task.action in self._actions else "unknown"
        started = time.perf_counter()
        command = await execute(
            task,
            self._actions,
            max_output_bytes=self._max_output_bytes,
            secrets=self._secrets,
        )
        elapsed = time.perf_counter() - started
        outcome = "succeeded" if isinstance(command, CompleteStep) else command.error_kind
        self._metrics.finished(label, outcome, elapsed)
        if isinstance(command, CompleteStep):
            log.info("step attempt succeeded", seconds=round(elapsed, 3))
        else:
            log.info(
                "step attempt failed",
                seconds=round(elapsed, 3),
                error_kind=command.error_kind,
                error_type=command.error_type,
                message=command.message,
            )
        await self._publish(
            command_record(
                command,
                task,
                envelope,
                topic=self._topics.commands,
                id=self._new_id(),
                time=self._clock(),
            )
        )
        self._remember(task.attempt_id)
        return outcome

    async def _dead_letter(self, record: ConsumedRecord, reason: str, detail: str) -> None:
        log.warning(
            "task record dead-lettered",
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
        await self._publish(letter)
        self._metrics.dead_letters.labels(reason=reason).inc()

    async def _publish(self, record: OutboundRecord) -> None:
        """Publish until Kafka acknowledges: the attempt's outcome must not be lost."""
        delay = self._backoff
        while True:
            try:
                await self._publisher.publish(record)
                return
            except Exception as exc:
                log.warning(
                    "publish failed; retrying",
                    topic=record.topic,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(max(delay * 2, 0.05), _MAX_PUBLISH_BACKOFF)


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the executor finish and commit revoked partitions' work before they move."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def on_partitions_revoked(self, revoked: Set[TopicPartition]) -> None:
        await self._executor.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Set[TopicPartition]) -> None:
        log.info("partitions assigned", partitions=sorted(str(tp) for tp in assigned))
