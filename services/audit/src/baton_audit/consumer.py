"""An exactly-once projection of a topic into PostgreSQL (STYLE.md habit 4).

Each partition's batch is applied in one transaction together with the partition's next
offset, and on assignment the consumer seeks to the stored offsets. Kafka's committed
offsets are not used: PostgreSQL holds the position, so a record's effect and the fact
that it was applied cannot part. A record that cannot be used goes to the dead-letter
topic with the reason; any other error rolls the batch back and retries it with backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, Protocol

import structlog
from aiokafka import TopicPartition
from asyncpg.exceptions import DataError, IntegrityConstraintViolationError

from baton_audit.db import Connection, Pool
from baton_audit.metrics import BATCH_FAILURES, FRESHNESS, POSITION, RECORDS
from baton_audit.positions import StalePosition, lock_position, store_position, stored_positions
from baton_common import projection
from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord
from baton_common.projection import Backoff, PositionListener, ProjectionLoop
from baton_common.publishing import Publisher

__all__ = [
    "Backoff",
    "PositionListener",
    "Projector",
    "RecordConsumer",
    "RecordHandler",
    "stored_positions",
]

log = structlog.get_logger(__name__)

RecordHandler = Callable[
    [Connection, Sequence[ConsumedRecord]], Awaitable[list[tuple[ConsumedRecord, str]]]
]
"""Applies records of one partition, in order, inside the caller's transaction; returns the
records it cannot use, each with the reason."""

_POLL_MS: Final = 1000
_ASYNC_COMMIT: Final = "set local synchronous_commit = off"
_IDLE_CHECK_S: Final = 1.0


class RecordConsumer(projection.RecordConsumer, Protocol):
    """The parts of ``AIOKafkaConsumer`` the projector uses: the assignment as well, to
    check idle partitions' positions (ADR 0571)."""

    def assignment(self) -> set[TopicPartition]: ...


class Projector(ProjectionLoop):
    """Feeds records from a group consumer through ``handle`` into PostgreSQL, exactly once."""

    def __init__(
        self,
        *,
        consumer: RecordConsumer,
        pool: Pool,
        handle: RecordHandler,
        publisher: Publisher,
        name: str,
        dlq_topic: str,
        max_records: int | None = None,
    ) -> None:
        super().__init__(
            consumer=consumer, pool=pool, name=name, dlq_topic=dlq_topic, position=POSITION
        )
        self._consumer: RecordConsumer = consumer
        self._pool: Pool = pool
        self._handle = handle
        self._publisher = publisher
        self._max_records = max_records
        # A reset runs in the polling task, between polls and with no batch in flight, so
        # no batch read before it is applied after it.
        self._resets: list[tuple[Sequence[str], asyncio.Future[None]]] = []
        # Per partition, the position this projector last stored or sought (ADR 0571): a
        # stored one that differs was moved by another replica (a rebuild) or another owner.
        self._expected: dict[tuple[str, int], int] = {}
        self._idle_checked = time.monotonic()

    def _sought(self, tp: TopicPartition, stored: int | None) -> None:
        self._expected[tp.topic, tp.partition] = stored or 0  # none stored reads as 0

    async def run(self) -> None:
        """Poll and apply forever; errors are logged and retried, never fatal.

        The next poll is taken while a poll's batches are applied (ADR 0570): the consumer's
        decoding of the next records overlaps PostgreSQL's work on these. Seeks happen
        between polls only: a rolled-back batch's partition is sought back once the poll
        taken meanwhile has returned, and that poll's records of the partition, which
        follow the rolled-back ones, are dropped (read again after the seek).
        """
        backoff = Backoff()
        ahead: asyncio.Future[Fetched | None] | None = None
        try:
            while True:
                if self._resets:
                    await _dropped(ahead)  # a reset runs with no poll and no batch in flight
                    ahead = None
                    await self._reset_now()
                polled = await (ahead if ahead is not None else self._poll())
                ahead = None
                if polled is None:
                    await backoff.wait()
                    continue
                if self._resets:
                    continue  # a reset is pending: these records will be read again
                batches = {tp: records for tp, records in polled.items() if records}
                if time.monotonic() - self._idle_checked >= _IDLE_CHECK_S:
                    await self._check_idle(batches.keys())  # nothing in flight: may seek
                ahead = asyncio.ensure_future(self._poll())
                # Partitions hold disjoint runs, so their batches go in concurrently, each on
                # its own connection: one's PostgreSQL time overlaps another's Python time.
                outcomes = await asyncio.gather(
                    *(self._apply_logged(tp, records) for tp, records in batches.items())
                )
                rewinds = {
                    tp: rewind
                    for tp, rewind in zip(batches, outcomes, strict=True)
                    if rewind is not None
                }
                if not rewinds:
                    backoff.reset()
                    continue
                taken = await ahead
                ahead = _done({tp: r for tp, r in (taken or {}).items() if tp not in rewinds})
                for tp, (offset, _) in rewinds.items():
                    self._rewind(tp, offset)
                if any(failed for _, failed in rewinds.values()):
                    await backoff.wait()
        finally:
            await _dropped(ahead)

    async def _poll(self) -> Fetched | None:
        """One poll; None if it failed (logged)."""
        try:
            return await self._consumer.getmany(timeout_ms=_POLL_MS, max_records=self._max_records)
        except Exception as exc:
            log.warning("poll failed", error=repr(exc))
            return None

    async def _apply_logged(
        self, tp: TopicPartition, records: Sequence[ConsumedRecord]
    ) -> tuple[int, bool] | None:
        """Apply one partition's batch; if it was rolled back, the offset to read the
        partition from again and whether it failed (logged) rather than found its position
        moved by another replica."""
        try:
            await self.apply_batch(tp.topic, tp.partition, records)
        except StalePosition as stale:
            log.info("partition moved by another replica; reading it again", reason=str(stale))
            return stale.stored, False
        except Exception:
            BATCH_FAILURES.inc()
            log.exception(
                "batch rolled back; retrying",
                topic=tp.topic,
                partition=tp.partition,
                offset=records[0].offset,
            )
            return records[0].offset, True
        return None

    async def _check_idle(self, busy: Iterable[TopicPartition]) -> None:
        """Seek the assigned partitions that had no records to their stored positions if
        another replica moved them (a rebuild there emptied the store): a batch finds that
        out itself, an idle partition would otherwise wait for its next record."""
        self._idle_checked = time.monotonic()
        skip = set(busy)
        idle = [
            tp
            for tp in sorted(self._consumer.assignment())
            if tp not in skip and (tp.topic, tp.partition) in self._expected
        ]
        if not idle:
            return
        try:
            stored = await stored_positions(self._pool, {tp.topic for tp in idle})
        except Exception as exc:  # PostgreSQL may be restarting: the next check will tell
            log.warning("cannot read stored positions", error=repr(exc))
            return
        for tp in idle:
            key = (tp.topic, tp.partition)
            offset = stored.get(key, 0)
            if offset != self._expected[key]:
                log.info(
                    "partition moved by another replica; reading it again",
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                )
                self._expected[key] = offset
                self._rewind(tp, offset)

    async def reset(self, tables: Sequence[str]) -> None:
        """Empty ``tables`` and the stored positions, and re-read every partition from the start.

        The rebuild path: what the projection wrote is dropped in one transaction and
        re-projected from offset 0 by the polling loop. An interrupted rebuild resumes from
        the positions stored with the rows, like any restart. Returns once the tables are
        empty and the partitions rewound.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the projection loop is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resets.append((tables, done))
        await done

    async def _reset_now(self) -> None:
        resets, self._resets = self._resets, []
        try:
            tables = sorted({t for names, _ in resets for t in names})
            async with self._pool.acquire() as conn, conn.transaction():
                # Positions first: a batch of another replica locks its position before any
                # table, so the truncate waits for it there holding nothing it needs (the
                # other order deadlocks against a batch in flight, ADR 0571).
                await conn.execute(f"truncate {', '.join(['consumer_positions', *tables])}")
            assigned = sorted(self._consumer.assignment())
            if assigned:
                await self._consumer.seek_to_beginning(*assigned)
            self._expected = {(tp.topic, tp.partition): 0 for tp in assigned}
            for tp in assigned:
                POSITION.labels(tp.topic, str(tp.partition)).set(0)
        except Exception as exc:
            for _, done in resets:
                done.set_exception(exc)
            return
        log.info("projection reset", partitions=[f"{tp.topic}:{tp.partition}" for tp in assigned])
        for _, done in resets:
            done.set_result(None)

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        try:
            self._consumer.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: its new owner starts from the store
            log.warning("cannot rewind partition", partition=tp.partition, error=repr(exc))

    async def apply_batch(
        self, topic: str, partition: int, records: Sequence[ConsumedRecord]
    ) -> int:
        """Apply one partition's records and its new position in one transaction.

        Records below the stored position were applied before (a redelivery) and are
        skipped. A stored position other than the one this projector last stored or sought
        raises ``StalePosition`` (ADR 0571): the caller reads the partition again from the
        stored position, which the projector expects from then on; so does a commit lost
        in a PostgreSQL crash (the transaction commits with ``synchronous_commit`` off,
        ADR 0573). A caller that never
        sought (a bench, a test) takes the stored one. Dead letters are sent before the
        transaction commits, so a record is never marked done unless it was applied or its
        dead letter is durable.

        Returns:
            The partition's next offset.
        """
        dead: list[OutboundRecord] = []
        async with self._pool.acquire() as conn, conn.transaction():
            # The commit does not wait for the WAL flush (ADR 0573): a crash may lose the
            # last commits, but each takes its position with it, so their records are read
            # again (a restart seeks to the stored positions; a running projector finds the
            # stored position behind the one it expects, ADR 0571). Visible at once.
            await conn.execute(_ASYNC_COMMIT)
            next_offset = await lock_position(conn, topic, partition)
            expected = self._expected.get((topic, partition))
            if expected is not None and next_offset != expected:
                self._expected[topic, partition] = next_offset  # read again from there
                raise StalePosition(topic, partition, next_offset, expected)
            fresh = [r for r in records if r.offset >= next_offset]
            duplicates = len(records) - len(fresh)
            for record, reason in await self._apply_fresh(conn, fresh):
                dead.append(self._dead_letter(record, reason))
            if fresh:
                next_offset = fresh[-1].offset + 1
            await store_position(conn, topic, partition, next_offset)
            for letter in dead:
                await self._publisher.publish(letter)
        self._expected[topic, partition] = next_offset
        RECORDS.labels("applied").inc(len(fresh) - len(dead))
        RECORDS.labels("duplicate").inc(duplicates)
        RECORDS.labels("dead_lettered").inc(len(dead))
        POSITION.labels(topic, str(partition)).set(next_offset)
        _observe_freshness(fresh)
        return next_offset

    async def _apply_fresh(
        self, conn: Connection, records: Sequence[ConsumedRecord]
    ) -> list[tuple[ConsumedRecord, str]]:
        """The whole batch at once; if PostgreSQL refuses it, one record at a time."""
        if not records:
            return []
        try:
            async with conn.transaction():  # a savepoint
                return await self._handle(conn, records)
        except (DataError, IntegrityConstraintViolationError) as exc:
            log.info("batch refused; applying its records one by one", error=repr(exc))
        unusable: list[tuple[ConsumedRecord, str]] = []
        for record in records:
            unusable.extend(await self._apply_one(conn, record))
        return unusable

    async def _apply_one(
        self, conn: Connection, record: ConsumedRecord
    ) -> list[tuple[ConsumedRecord, str]]:
        try:
            # A savepoint: a record PostgreSQL refuses is dead-lettered alone.
            async with conn.transaction():
                return await self._handle(conn, [record])
        except (DataError, IntegrityConstraintViolationError) as exc:
            return [(record, f"database refused the record: {type(exc).__name__}: {exc}")]


def _done(polled: Fetched) -> asyncio.Future[Fetched | None]:
    """A poll already taken, to be awaited as the next one."""
    future: asyncio.Future[Fetched | None] = asyncio.get_running_loop().create_future()
    future.set_result(polled)
    return future


async def _dropped(ahead: asyncio.Future[Fetched | None] | None) -> None:
    """Cancel a poll taken ahead and wait for it to end; its records are read again after
    the seek that follows."""
    if ahead is not None and not ahead.done():
        ahead.cancel()
        await asyncio.wait({ahead})


def _observe_freshness(records: Sequence[ConsumedRecord]) -> None:
    """Time from each record's append (its Kafka timestamp) to its commit in the store."""
    now_ms = time.time() * 1000
    for record in records:
        stamp = getattr(record, "timestamp", None)
        if isinstance(stamp, int) and stamp > 0:
            FRESHNESS.observe(max(0.0, (now_ms - stamp) / 1000))
