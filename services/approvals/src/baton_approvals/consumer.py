"""An exactly-once projection of a topic into PostgreSQL (STYLE.md habit 4).

Each partition's batch is applied in one transaction together with the partition's next
offset, and on assignment the consumer seeks to the stored offsets. Kafka's committed
offsets are not used: PostgreSQL holds the position, so a record's effect and the fact
that it was applied cannot part. A record that cannot be used goes to the dead-letter
topic with the reason; any other error rolls the batch back and retries it with backoff.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from asyncpg.exceptions import DataError, IntegrityConstraintViolationError

from baton_approvals.db import Connection, Pool
from baton_approvals.metrics import BATCH_FAILURES, POSITION, RECORDS
from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord, dead_letter
from baton_common.positions import lock_position, store_position, stored_positions
from baton_common.publishing import Publisher

__all__ = ["Backoff", "PositionListener", "Projector", "RecordConsumer", "RecordHandler"]

log = structlog.get_logger(__name__)

RecordHandler = Callable[[Connection, ConsumedRecord], Awaitable[str | None]]
"""Applies one record inside the caller's transaction; returns why it is unusable, or None."""

_POLL_MS: Final = 1000


class RecordConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` the projector uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Fetched: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> bool: ...


class Backoff:
    """Exponential backoff with jitter for loops that must outlive transient errors."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self._first = first
        self._cap = cap
        self._delay = first

    def reset(self) -> None:
        self._delay = self._first

    async def wait(self) -> None:
        await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
        self._delay = min(self._delay * 2, self._cap)


class Projector:
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
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._handle = handle
        self._publisher = publisher
        self._name = name
        self._dlq_topic = dlq_topic
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def joined(self) -> bool:
        """Whether partitions have been assigned (possibly none) and positions restored."""
        return self._joined.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self._name}-projection")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than await: a cancellation of the caller must not be swallowed.
            await asyncio.wait({task})

    def not_ready(self) -> str | None:
        """A readiness check: None once the consumer has joined and its loop is running."""
        if self._task is None or self._task.done():
            return "consumer loop is not running"
        if not self._joined.is_set():
            return "consumer has no partition assignment yet"
        return None

    async def seek_to_stored(self, assigned: Iterable[TopicPartition]) -> None:
        """Position newly assigned partitions at their stored offsets, or at the beginning."""
        partitions = sorted(assigned)
        backoff = Backoff()
        while True:
            try:
                stored = await stored_positions(self._pool, {tp.topic for tp in partitions})
                break
            except Exception as exc:  # PostgreSQL may be restarting: wait for it
                log.warning("cannot read stored positions", error=repr(exc))
                await backoff.wait()
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
                POSITION.labels(tp.topic, str(tp.partition)).set(offset)
        log.info(
            "partitions assigned", partitions=[f"{tp.topic}:{tp.partition}" for tp in partitions]
        )
        self._joined.set()

    async def run(self) -> None:
        """Poll and apply forever; errors are logged and retried, never fatal."""
        backoff = Backoff()
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
            except Exception as exc:
                log.warning("poll failed", error=repr(exc))
                await backoff.wait()
                continue
            for tp, records in batches.items():
                if not records:
                    continue
                try:
                    await self.apply_batch(tp.topic, tp.partition, records)
                except Exception:
                    BATCH_FAILURES.inc()
                    log.exception(
                        "batch rolled back; retrying",
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=records[0].offset,
                    )
                    self._rewind(tp, records[0].offset)
                    await backoff.wait()
                else:
                    backoff.reset()

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
        skipped. Dead letters are sent before the transaction commits, so a record is
        never marked done unless it was applied or its dead letter is durable.

        Returns:
            The partition's next offset.
        """
        dead: list[OutboundRecord] = []
        applied = duplicates = 0
        async with self._pool.acquire() as conn, conn.transaction():
            next_offset = await lock_position(conn, topic, partition)
            for record in records:
                if record.offset < next_offset:
                    duplicates += 1
                    continue
                reason = await self._apply_one(conn, record)
                if reason is None:
                    applied += 1
                else:
                    log.warning(
                        "record dead-lettered",
                        topic=topic,
                        partition=partition,
                        offset=record.offset,
                        reason=reason,
                    )
                    dead.append(
                        dead_letter(
                            record,
                            dlq_topic=self._dlq_topic,
                            consumer=self._name,
                            reason=reason,
                            time=datetime.now(UTC),
                        )
                    )
                next_offset = record.offset + 1
            await store_position(conn, topic, partition, next_offset)
            for letter in dead:
                await self._publisher.publish(letter)
        RECORDS.labels("applied").inc(applied)
        RECORDS.labels("duplicate").inc(duplicates)
        RECORDS.labels("dead_lettered").inc(len(dead))
        POSITION.labels(topic, str(partition)).set(next_offset)
        return next_offset

    async def _apply_one(self, conn: Connection, record: ConsumedRecord) -> str | None:
        try:
            # A savepoint: a record PostgreSQL refuses is dead-lettered alone.
            async with conn.transaction():
                return await self._handle(conn, record)
        except (DataError, IntegrityConstraintViolationError) as exc:
            return f"database refused the record: {type(exc).__name__}: {exc}"


class PositionListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks newly assigned partitions to the positions stored with the projection."""

    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to save: positions are written with the records' effects.
        log.info(
            "partitions revoked", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._projector.seek_to_stored(assigned)
