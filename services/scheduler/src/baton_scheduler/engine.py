"""The scheduler's engine: recovery of run states, partition ownership, and each
command's decode → decide → journal → records; the batches and their transactions are
:mod:`baton_scheduler.command_loop`'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from pydantic import ValidationError

from baton_common.catalog import StoryCatalog
from baton_common.commands import COMMAND_ADAPTER, Command, StartRun
from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.heap import settle_heap
from baton_common.kafka import ConsumedRecord, OutboundRecord, dead_letter
from baton_common.metrics import labelled
from baton_common.outbound_records import record as encoded_record
from baton_common.policy_catalog import PolicyCatalog
from baton_common.settings import TopicSettings
from baton_common.state import RunState
from baton_common.story import Story
from baton_common.telemetry import hot_span, tracing_enabled
from baton_common.trusted import replaced
from baton_scheduler import metrics
from baton_scheduler.batch import Decided, Staged
from baton_scheduler.command_loop import CommandLoop
from baton_scheduler.decide import Context, decide
from baton_scheduler.held import HeldCommands
from baton_scheduler.journal import journal
from baton_scheduler.rate_window import StartWindow
from baton_scheduler.recovery import rebuild_partition
from baton_scheduler.snapshot import load_snapshot
from baton_scheduler.store import RunStore
from baton_scheduler.timer_loop import TimerLoop

__all__ = ["Engine"]

log = structlog.get_logger(__name__)


class Engine(CommandLoop):
    """Owns the command consumer, the transactional producer and the run store; decides
    each command (the loop around it: :class:`CommandLoop`)."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        recovery_consumer: AIOKafkaConsumer,
        catalog: StoryCatalog,
        topics: TopicSettings,
        group_id: str,
        story_wait_seconds: float = 5.0,
        timer_producer: AIOKafkaProducer | None = None,
        timer_resend_seconds: float = 30.0,
        snapshot_every: int = 0,
        max_batch: int = 200,
        policies: PolicyCatalog | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._recovery = recovery_consumer
        self._catalog = catalog
        self._topics = topics
        self._group_id = group_id
        self._story_wait = story_wait_seconds
        self.store = RunStore()
        self.timers = TimerLoop(
            self.store,
            timer_producer or producer,
            topics.commands,
            resend_seconds=timer_resend_seconds,
        )
        self.assigned: set[int] = set()
        self.recovering = False
        self._snapshot_every = snapshot_every
        self._max_batch = max(1, max_batch)
        self._runs_end: dict[int, int] = {}  # next baton.runs offset per partition
        self._since_snapshot: dict[int, int] = {}
        self._policies = policies
        self._starts = StartWindow()
        self._held = HeldCommands()  # fetched for the next batch (ADR 0180)
        self._inflight: Decided | None = None  # the batch whose transaction is open
        self._revocations = 0
        self._debug = log.bind().is_enabled_for(logging.DEBUG)  # as logging is configured

    def subscribe(self) -> None:
        self._consumer.subscribe([self._topics.commands], listener=_Rebalance(self))

    async def recover(self, partitions: list[int]) -> None:
        self.recovering = True
        try:
            for partition in partitions:
                snapshot = None
                if self._snapshot_every > 0:
                    snapshot = await load_snapshot(
                        self._recovery, self._topics.snapshots, self._topics.runs, partition
                    )
                rebuilt = await rebuild_partition(
                    self._recovery, self._topics.runs, partition, snapshot
                )
                self.store.apply(rebuilt.states)
                self._runs_end[partition] = rebuilt.end_offset
                self._since_snapshot[partition] = 0
            self.assigned |= set(partitions)
            self.timers.track(self.store.running())
            # The recovered run states out of the collector's reach (ADR 0120).
            settle_heap(what="recovery")
        finally:
            self.recovering = False

    def revoke(self, partitions: list[int]) -> None:
        dropped = self.store.drop_partitions(partitions)
        self.assigned -= set(partitions)
        self._revocations += 1  # the batch being decided is dropped (ADR 0181)
        self._held.drop_partitions(set(partitions))
        log.info("partitions revoked", partitions=partitions, runs_dropped=dropped)

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        """The records one command produces; ``staged`` collects the runs it changed."""
        try:
            envelope = decode_record(record.value, record.headers)
            command = COMMAND_ADAPTER.validate_python(envelope.data)
        except (EnvelopeError, ValidationError) as exc:
            metrics.COMMANDS.labels(type="unparsable", outcome="dlq").inc()
            log.warning("command sent to the DLQ", offset=record.offset, reason=str(exc))
            return [
                dead_letter(
                    record,
                    dlq_topic=self._topics.dlq,
                    consumer="scheduler",
                    reason=_reason(exc),
                    time=datetime.now(UTC),
                )
            ]
        metrics.COMMAND_LATENCY.observe(_age(record))
        if not tracing_enabled():  # hot_span would give the envelope's traceparent back
            return await self._decide(record, envelope, command, staged)
        with hot_span(
            "baton.scheduler.decide",
            parent=envelope.traceparent,
            attributes={"baton.run_id": command.run_id, "baton.command": command.type},
        ) as traceparent:
            if traceparent != envelope.traceparent:  # events and tasks name this span
                envelope = replaced(envelope, {"traceparent": traceparent})
            return await self._decide(record, envelope, command, staged)

    async def _decide(
        self, record: ConsumedRecord, envelope: Envelope, command: Command, staged: Staged
    ) -> list[OutboundRecord]:
        now = _log_time(record)
        partition = record.partition

        def lookup(run_id: str) -> RunState | None:
            if run_id in staged:
                return staged[run_id][1]
            # decided in the batch whose transaction is in flight (ADR 0181)
            inflight = self._inflight.staged if self._inflight is not None else {}
            return inflight[run_id][1] if run_id in inflight else self.store.get(run_id)

        state = lookup(command.run_id)
        current = None
        if isinstance(command, StartRun):
            # a new run, or a new dedup generation: the version the command asks for
            story = await self._catalog.wait_for(
                command.story_id, command.story_version, self._story_wait
            )
            if state is not None and state.dedup_current is not None:
                current = lookup(state.dedup_current)
        elif state is not None:
            story = self._catalog.get(state.story_id, state.story_version)
        else:
            story = None
        known = {s.run_id: s for s in (state, current) if s is not None}
        try:
            context = Context(now, envelope.id, self._topics.partitions, current, envelope.actor)
            if self._policies is not None and self._policies.current():
                context = self._policy_context(context, command, story)
            decision = decide(state, command, story, context)
            entry = journal(known, decision.events, envelope, now, self._topics, decision.after)
        except Exception as exc:  # a decider bug must not wedge the partition: keep the record
            log.exception("decider failed; command sent to the DLQ", run_id=command.run_id)
            metrics.COMMANDS.labels(type=command.type, outcome="dlq").inc()
            return [
                dead_letter(
                    record,
                    dlq_topic=self._topics.dlq,
                    consumer="scheduler",
                    reason=f"decider error: {type(exc).__name__}: {exc}",
                    time=now,
                )
            ]
        for run_id, changed in entry.states.items():
            staged[run_id] = (record.partition, changed)
        metrics.observe_events(entry.events, entry.states)
        rejected = any(e.type == "baton.command.rejected.v1" for e in entry.events)
        outcome = "rejected" if rejected else "accepted"
        labelled(metrics.COMMANDS, command.type, outcome).inc()
        # Debug: the decision is already on the log (its events); at INFO, one line per
        # command was 8% of the scheduler's CPU in the phishing walkthrough. Even a
        # filtered call binds the lazy logger (~3 us), hence the check made once.
        if self._debug:
            log.debug(
                "command decided",
                run_id=command.run_id,
                command=command.type,
                events=[e.type for e in entry.events],
            )
        runs = self._topics.runs
        out = [
            OutboundRecord(runs, (e.subject or command.run_id).encode(), value, headers, partition)
            for e, (value, headers) in zip(entry.events, entry.records, strict=True)
        ]
        for t in entry.tasks:
            if t.record is None:
                out.append(encoded_record(t.topic, t.key, t.envelope))
            else:
                out.append(OutboundRecord(t.topic, t.key.encode(), *t.record))
        return out

    def _policy_context(self, context: Context, command: Command, story: Story | None) -> Context:
        """The policies in force, and for a StartRun its story's recent starts (ADR 0910)."""
        assert self._policies is not None
        started = 0
        if isinstance(command, StartRun) and story is not None:
            started = self._starts.count(story.id, context.now)
            self._starts.note(story.id, context.now)
        return replace(context, policies=self._policies.current(), started_last_minute=started)


def _log_time(record: ConsumedRecord) -> datetime:
    stamp = getattr(record, "timestamp", None)
    if isinstance(stamp, int) and stamp > 0:
        return datetime.fromtimestamp(stamp / 1000, UTC)
    return datetime.now(UTC)


def _age(record: ConsumedRecord) -> float:
    stamp = getattr(record, "timestamp", None)
    if isinstance(stamp, int) and stamp > 0:
        return max(0.0, time.time() - stamp / 1000)
    return 0.0


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "command"
        return f"not a valid command: {where}: {err['msg']}"
    return str(exc)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._engine.revoke([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info("partitions assigned; rebuilding run states", partitions=partitions)
        await self._engine.recover(partitions)
        log.info("recovery done", partitions=partitions, runs=len(self._engine.store))
