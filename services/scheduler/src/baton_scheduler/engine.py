"""The command loop: decode → decide → journal → produce, one Kafka transaction per batch.

Events, task records and the consumer offsets of a batch commit atomically
(DESIGN.md rule 3); run states change in memory only after the commit succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from pydantic import ValidationError

from baton_common.catalog import StoryCatalog
from baton_common.commands import COMMAND_ADAPTER, Command, StartRun
from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.heap import settle_heap
from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord, dead_letter
from baton_common.outbound_records import record as encoded_record
from baton_common.policy_catalog import PolicyCatalog
from baton_common.settings import TopicSettings
from baton_common.state import RunState
from baton_common.story import Story
from baton_common.telemetry import hot_span, tracing_enabled
from baton_common.trusted import replaced
from baton_scheduler import metrics
from baton_scheduler.decide import Context, decide
from baton_scheduler.held import HeldCommands, gather
from baton_scheduler.journal import journal
from baton_scheduler.produce import send_records
from baton_scheduler.rate_window import StartWindow
from baton_scheduler.recovery import rebuild_partition
from baton_scheduler.snapshot import load_snapshot, snapshot_records, state_json
from baton_scheduler.store import RunStore, compact
from baton_scheduler.timer_loop import TimerLoop

__all__ = ["Engine"]

log = structlog.get_logger(__name__)

Staged = dict[str, tuple[int, RunState]]

# Deciding yields to the event loop this often, so the transaction's requests (its
# AddOffsetsToTxn first) are sent and answered while the batch is decided; once per
# command was a loop turn (a poll of the sockets) per command (ADR 0150).
YIELD_SECONDS = 0.002
# ... and this often while the offsets are not in yet: their two requests take about four
# turns of aiokafka's sender, which at one turn every 2 ms were still pending when a
# short batch had been decided (ADR 0180) ...
OFFSETS_YIELD_SECONDS = 0.0005
# ... and that many turns at a time: from an answer to the next request aiokafka's sender
# takes about five turns, so at one turn a yield each request waited for as many slices of
# deciding; a turn with nothing ready costs microseconds (ADR 0181).
OFFSETS_YIELD_TURNS = 5


class Engine:
    """Owns the command consumer, the transactional producer and the run store."""

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
        # The counts and observations of the batch being decided, added to the metrics
        # only once its transaction commits (ADR 0183).
        self.tally = metrics.Tally()
        # Resolved when the batch in its transaction has committed or aborted (ADR 0184).
        self._in_flight: asyncio.Future[None] | None = None
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
        for partition in partitions:
            self._runs_end.pop(partition, None)
            self._since_snapshot.pop(partition, None)
        self._held.drop_partitions(set(partitions))
        log.info("partitions revoked", partitions=partitions, runs_dropped=dropped)

    async def settle(self) -> None:
        """Wait until the batch in its transaction, if any, has committed or aborted.

        The rebalance callback waits here before it gives partitions up: their next owner
        reads their committed offsets and rebuilds their runs from ``baton.runs`` (both
        read committed), and neither waits for a transaction still open, so a batch
        committing after the handover would be decided twice (ADR 0184).
        """
        in_flight = self._in_flight
        if in_flight is not None:
            await asyncio.shield(in_flight)

    async def run(self) -> None:
        """Process commands until cancelled."""
        while True:
            batches = await self._next_batch()
            # records of a partition whose run states are not rebuilt yet (the rebalance
            # callback is still recovering it) are put back, to be decided after recovery
            unready = [tp for tp in batches if tp.partition not in self.assigned]
            for tp in unready:
                self._held.drop(tp)  # no await between dropping and seeking
                self._consumer.seek(tp, batches.pop(tp)[0].offset)
            if not batches:
                if unready:
                    await asyncio.sleep(0.05)
                continue
            started = time.perf_counter()
            staged: Staged = {}
            self.tally = tally = metrics.Tally()  # a replayed batch starts from nothing
            try:
                ends, snapped = await self._commit_watched(batches, staged)
            except ProducerFenced:
                log.error("another scheduler took over this transactional id; stopping")
                raise
            except (KafkaError, OSError) as exc:
                # the batch's tally is dropped with it: it is counted when it commits
                metrics.TRANSACTION_ABORTS.inc()
                log.warning("transaction aborted; replaying the batch", error=repr(exc))
                await self._rewind(list(batches))
                await asyncio.sleep(1.0)
                continue
            tally.apply()  # committed: its records are on the log, once
            self._committed(batches, staged, ends, snapped)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _committed(
        self, batches: Fetched, staged: Staged, ends: dict[int, int], snapped: set[int]
    ) -> None:
        """Apply a committed batch to the partitions still assigned: one revoked while the
        batch was in flight had its states dropped, and its new owner rebuilds them from
        the log (this batch's records included)."""
        held = self.assigned
        if any(partition not in held for partition, _ in staged.values()):
            staged = {r: (p, s) for r, (p, s) in staged.items() if p in held}
        self.store.apply(staged)
        self.timers.track(state for _, state in staged.values())
        self._runs_end.update({p: end for p, end in ends.items() if p in held})
        for tp, records in batches.items():
            if tp.partition not in held:
                continue
            since = self._since_snapshot.get(tp.partition, 0) + len(records)
            self._since_snapshot[tp.partition] = 0 if tp.partition in snapped else since

    async def _next_batch(self) -> Fetched:
        """The next batch: the commands gathered while the previous one ran, else the
        first fetched within 0.5 s; at most ``max_batch``."""
        await self._gather()
        if not self._held:
            fetched = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
            self._held.add(fetched)
        return self._held.take(self._max_batch)

    async def _gather(self) -> None:
        """Hold what the consumer has fetched so far for the next batch (ADR 0180)."""
        await gather(self._consumer, self._held, up_to=2 * self._max_batch)

    async def _commit_watched(
        self, batches: Fetched, staged: Staged
    ) -> tuple[dict[int, int], set[int]]:
        """``_commit_batch``, with ``settle`` waiting for it meanwhile."""
        self._in_flight = in_flight = asyncio.get_running_loop().create_future()
        try:
            return await self._commit_batch(batches, staged)
        finally:
            self._in_flight = None
            in_flight.set_result(None)

    async def _commit_batch(
        self, batches: Fetched, staged: Staged
    ) -> tuple[dict[int, int], set[int]]:
        """Decide and produce a batch in one transaction; return the new ``baton.runs``
        end offsets per partition and the partitions snapshotted in it."""
        stages = _StageClock()
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        async with self._producer.transaction():
            # The consumer offsets join the transaction first, while the batch is decided,
            # and the records go out only once they are in: a produce racing a coordinator
            # state change (AddOffsetsToTxn) is refused by the broker's transaction
            # verification and retried 100 ms later (ADR 0120).
            offsets_added = asyncio.ensure_future(
                self._producer.send_offsets_to_transaction(offsets, self._group_id)
            )
            try:
                outs: list[OutboundRecord] = []
                yielded = 0.0  # the producer's sender task runs at each yield
                for records in batches.values():
                    for record in records:
                        pending = not offsets_added.done()
                        every = OFFSETS_YIELD_SECONDS if pending else YIELD_SECONDS
                        if (now := time.perf_counter()) - yielded >= every:
                            for _ in range(OFFSETS_YIELD_TURNS if pending else 1):
                                await asyncio.sleep(0)
                            yielded = now
                        outs.extend(await self.handle(record, staged))
                stages.lap("decide")
                await self._gather()
                await offsets_added
            finally:
                offsets_added.cancel()  # only when deciding failed: the transaction aborts
            stages.lap("offsets")
            written = await send_records(self._producer, outs)
            stages.lap("produce")
            await self._gather()
            ends = {
                tp.partition: end for tp, end in written.items() if tp.topic == self._topics.runs
            }
            snapped = await self._snapshot(batches, staged, ends)
            if snapped:
                stages.lap("snapshot")
        stages.lap("commit")
        stages.record(commands=sum(len(r) for r in batches.values()), records=len(outs))
        return ends, snapped

    async def _snapshot(
        self,
        batches: Fetched,
        staged: Staged,
        ends: dict[int, int],
    ) -> set[int]:
        """Add snapshots of the partitions that are due to the open transaction (ADR 0102)."""
        if self._snapshot_every <= 0:
            return set()
        snapped: set[int] = set()
        for tp, records in batches.items():
            p = tp.partition
            covered = ends.get(p, self._runs_end.get(p))
            due = self._since_snapshot.get(p, 0) + len(records) >= self._snapshot_every
            if covered is None or not due:
                continue
            states = self.store.of_partition(p)
            states.update(
                {r: state_json(compact(s)) for r, (part, s) in staged.items() if part == p}
            )
            started = time.perf_counter()
            records_out = snapshot_records(
                snapshot_topic=self._topics.snapshots,
                runs_topic=self._topics.runs,
                partition=p,
                runs_offset=covered,
                states=states.values(),
                snapshot_id=f"{self._topics.runs}:{p}:{covered}",
                time=datetime.now(UTC),
            )
            pending = [
                await self._producer.send(
                    out.topic, out.value, key=out.key, headers=out.headers, partition=out.partition
                )
                for out in records_out
            ]
            await asyncio.gather(*pending)
            snapped.add(p)
            log.info(
                "snapshot written",
                partition=p,
                runs=len(states),
                runs_offset=covered,
                seconds=round(time.perf_counter() - started, 3),
            )
        return snapped

    async def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Seek ``partitions`` back to their committed offsets, dropping what is held
        for them (fetched past the aborted batch)."""
        committed = {tp: await self._consumer.committed(tp) for tp in partitions}
        for tp, offset in committed.items():  # no await between dropping and seeking
            self._held.drop(tp)
            if offset is not None:
                self._consumer.seek(tp, offset)
        beginning = [tp for tp, offset in committed.items() if offset is None]
        if beginning:
            await self._consumer.seek_to_beginning(*beginning)

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        """The records one command produces; ``staged`` collects the runs it changed."""
        try:
            envelope = decode_record(record.value, record.headers)
            command = COMMAND_ADAPTER.validate_python(envelope.data)
        except (EnvelopeError, ValidationError) as exc:
            self.tally.count(metrics.COMMANDS, "unparsable", "dlq")
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
        self.tally.observe(metrics.COMMAND_LATENCY, _age(record))
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
            return staged[run_id][1] if run_id in staged else self.store.get(run_id)

        run_id = command.run_id
        state = staged[run_id][1] if run_id in staged else self.store.get(run_id)
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
            self.tally.count(metrics.COMMANDS, command.type, "dlq")
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
        tally = self.tally
        metrics.observe_events(tally, entry.events, entry.states)
        rejected = any(e.type == "baton.command.rejected.v1" for e in entry.events)
        tally.count(metrics.COMMANDS, command.type, "rejected" if rejected else "accepted")
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


class _StageClock:
    """Times the stages of one batch's transaction (``baton_scheduler_batch_stage_seconds``;
    a debug log line per batch)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._laps[stage] = now - self._last
        self._last = now

    def record(self, **sizes: int) -> None:
        for stage, seconds in self._laps.items():
            metrics.BATCH_STAGE_SECONDS.labels(stage).observe(seconds)
        log.debug(
            "batch committed",
            **sizes,
            **{f"{stage}_ms": round(s * 1000, 1) for stage, s in self._laps.items()},
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._engine.settle()  # the batch in flight commits before the handover
        self._engine.revoke([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info("partitions assigned; rebuilding run states", partitions=partitions)
        await self._engine.recover(partitions)
        log.info("recovery done", partitions=partitions, runs=len(self._engine.store))
