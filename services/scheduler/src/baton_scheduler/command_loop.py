"""The command loop: decide → produce, one Kafka transaction per batch (ADR 0181).

A batch is decided while the previous batch's transaction is in flight, on top of that
batch's run states, and its own transaction begins as soon as that one has committed:
the decide step is off the transactions' critical path (begin, AddOffsetsToTxn,
TxnOffsetCommit, AddPartitionsToTxn, Produce, EndTxn: five round trips in a row, which
the broker's transaction verification does not let overlap, ADR 0181). Events, task
records and the consumer offsets of a batch commit atomically (DESIGN.md rule 3); run
states change in memory only after the commit succeeds; when a transaction aborts, the
batch decided on top of it is dropped and both are decided again from the committed
offsets.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord
from baton_common.settings import TopicSettings
from baton_scheduler import metrics
from baton_scheduler.batch import Decided, StageClock, Staged
from baton_scheduler.held import HeldCommands, gather, reassigning
from baton_scheduler.produce import send_records
from baton_scheduler.snapshot import snapshot_records, state_json
from baton_scheduler.store import RunStore, compact
from baton_scheduler.timer_loop import TimerLoop

__all__ = ["CommandLoop", "Written"]

log = structlog.get_logger(__name__)

Written = tuple[dict[int, int], set[int]]  # baton.runs end offsets; partitions snapshotted

# Deciding yields to the event loop this often; once per command was a loop turn (a poll
# of the sockets) per command (ADR 0150).
YIELD_SECONDS = 0.002
# ... and this often while the previous batch's transaction is in flight: each of its
# requests takes about four turns of aiokafka's sender (ADRs 0180, 0181).
INFLIGHT_YIELD_SECONDS = 0.0005


class CommandLoop:
    """Takes fetched commands, decides them (``handle``) and commits them in batches."""

    _consumer: AIOKafkaConsumer
    _producer: AIOKafkaProducer
    _topics: TopicSettings
    _group_id: str
    _max_batch: int
    _snapshot_every: int
    _held: HeldCommands
    _inflight: Decided | None  # the batch whose transaction is open
    _revocations: int  # partitions revoked so far: a batch decided meanwhile is dropped
    _runs_end: dict[int, int]
    _since_snapshot: dict[int, int]
    assigned: set[int]
    store: RunStore
    timers: TimerLoop

    async def handle(self, record: ConsumedRecord, staged: Staged) -> list[OutboundRecord]:
        """The records one command produces; ``staged`` collects the runs it changed."""
        raise NotImplementedError

    async def run(self) -> None:
        """Process commands until cancelled. A batch is decided while the previous one's
        transaction is in flight and begins its own as soon as that one has committed
        (ADR 0181): the decide step is off the transactions' critical path."""
        committing: asyncio.Task[Written] | None = None
        try:
            while True:
                batch = Decided()
                revocations = self._revocations
                failure: Exception | None = None
                try:
                    await self._decide_next(batch, committing)
                except Exception as exc:  # settled below, with the transaction in flight
                    failure = exc
                replay = await self._settle(committing)
                committing = None
                if failure is not None and not isinstance(failure, KafkaError | OSError):
                    raise failure
                if failure is not None:
                    metrics.TRANSACTION_ABORTS.inc()
                    log.warning("batch failed; replaying it", error=repr(failure))
                if failure is not None or replay:
                    # decided on top of the aborted batch, or failed itself: decided again
                    await self._rewind(list({*replay, *batch.records}))
                    await asyncio.sleep(1.0)
                    continue
                if revocations != self._revocations:
                    self._drop_decided(batch)
                    continue
                if batch:
                    self._inflight = batch
                    committing = asyncio.create_task(self._commit_batch(batch))
        finally:
            if committing is not None:
                committing.cancel()
                await asyncio.wait({committing})
            self._inflight = None

    async def _decide_next(self, batch: Decided, committing: asyncio.Task[Written] | None) -> None:
        """Decide fetched commands into ``batch`` until ``committing`` (the previous batch's
        transaction) is done or the batch is full; with none in flight, what is fetched."""
        while batch.count < self._max_batch:
            taken = await self._take(self._max_batch - batch.count, committing)
            if taken:
                await self._decide_into(batch, taken, committing)
            if committing is None and (batch or taken is None):
                return
            if committing is not None and committing.done():
                return

    async def _take(self, room: int, committing: asyncio.Task[Written] | None) -> Fetched | None:
        """Up to ``room`` fetched commands: what is held or fetched, else the first to
        arrive (within 0.5 s) or nothing once ``committing`` is done. ``None`` when none
        arrived with nothing in flight."""
        if not self._held:
            await self._gather()
        if not self._held:
            await self._wait_for_commands(committing)
            if not self._held:
                return None if committing is None else {}
        taken = self._held.take(room)
        # records of a partition whose run states are not rebuilt yet (the rebalance
        # callback is still recovering it) are put back, to be decided after recovery
        unready = [tp for tp in taken if tp.partition not in self.assigned]
        for tp in unready:
            self._held.drop(tp)  # no await between dropping and seeking
            self._consumer.seek(tp, taken.pop(tp)[0].offset)
        if unready and not taken:
            await asyncio.sleep(0.05)
        return taken

    async def _wait_for_commands(self, committing: asyncio.Task[Written] | None) -> None:
        """Hold the next fetched commands, waiting up to 0.5 s, or until ``committing`` is
        done if it is sooner; never while the group is rebalancing with a transaction in
        flight (``getmany`` then waits for the new assignment)."""
        if committing is None:
            self._held.add(await self._fetch())
            return
        if reassigning(self._consumer):
            await asyncio.wait({committing})
            return
        fetch = asyncio.ensure_future(self._fetch())
        await asyncio.wait({fetch, committing}, return_when=asyncio.FIRST_COMPLETED)
        fetch.cancel()  # waiting only: a cancelled getmany has taken no record
        await asyncio.wait({fetch})
        if not fetch.cancelled():
            self._held.add(fetch.result())

    async def _fetch(self) -> Fetched:
        fetched: Fetched = await self._consumer.getmany(timeout_ms=500, max_records=self._max_batch)
        return fetched

    async def _decide_into(
        self, batch: Decided, taken: Fetched, committing: asyncio.Task[Written] | None
    ) -> None:
        """Decide ``taken`` into ``batch``, turning the event loop often enough for the
        transaction in flight (its requests) to go on meanwhile."""
        every = YIELD_SECONDS if committing is None else INFLIGHT_YIELD_SECONDS
        yielded = time.perf_counter()
        commands = [(tp, record) for tp, records in taken.items() for record in records]
        for n, (tp, record) in enumerate(commands):
            if (now := time.perf_counter()) - yielded >= every:
                await asyncio.sleep(0)
                yielded = now = time.perf_counter()
            try:
                outs = await self.handle(record, batch.staged)
            except BaseException:
                self._held.put_back(commands[n:])  # decided again, or dropped by a rewind
                raise
            batch.add(tp, record, outs)
            batch.deciding += time.perf_counter() - now

    def _drop_decided(self, batch: Decided) -> None:
        """Forget a batch decided while partitions were revoked (it may hold their
        commands): the partitions still owned are decided again from its first command."""
        for tp, records in batch.records.items():
            self._held.drop(tp)  # no await between dropping and seeking
            if tp.partition in self.assigned:
                self._consumer.seek(tp, records[0].offset)

    async def _settle(self, committing: asyncio.Task[Written] | None) -> list[TopicPartition]:
        """Wait for ``committing``; apply its batch once committed, or return its
        partitions to replay once aborted."""
        batch, self._inflight = self._inflight, None
        if committing is None or batch is None:
            return []
        try:
            ends, snapped = await committing
        except ProducerFenced:
            log.error("another scheduler took over this transactional id; stopping")
            raise
        except (KafkaError, OSError) as exc:
            metrics.TRANSACTION_ABORTS.inc()
            log.warning("transaction aborted; replaying the batch", error=repr(exc))
            return list(batch.records)
        # not the runs of partitions revoked meanwhile (their new owner rebuilds them)
        owned = {r: (p, state) for r, (p, state) in batch.staged.items() if p in self.assigned}
        self.store.apply(owned)
        self.timers.track(state for _, state in owned.values())
        self._runs_end.update(ends)
        for tp, records in batch.records.items():
            since = self._since_snapshot.get(tp.partition, 0) + len(records)
            self._since_snapshot[tp.partition] = 0 if tp.partition in snapped else since
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        return []

    async def _gather(self) -> None:
        """Hold what the consumer has fetched so far (ADR 0180)."""
        await gather(self._consumer, self._held, up_to=2 * self._max_batch)

    async def _commit_batch(self, batch: Decided) -> Written:
        """Commit a decided batch in one transaction; return the new ``baton.runs`` end
        offsets per partition and the partitions snapshotted in it."""
        stages = StageClock()
        async with self._producer.transaction():
            # The consumer offsets join the transaction first and the records go out only
            # once they are in: a produce racing a coordinator state change (AddOffsetsToTxn)
            # is refused by the broker's transaction verification (ADR 0120).
            await self._producer.send_offsets_to_transaction(batch.offsets(), self._group_id)
            stages.lap("offsets")
            written = await send_records(self._producer, batch.outs)
            stages.lap("produce")
            ends = {
                tp.partition: end for tp, end in written.items() if tp.topic == self._topics.runs
            }
            snapped = await self._snapshot(batch.records, batch.staged, ends)
            if snapped:
                stages.lap("snapshot")
        stages.lap("commit")
        stages.record(decide=batch.deciding, commands=batch.count, records=len(batch.outs))
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
