"""An exactly-once projection of a topic into PostgreSQL (STYLE.md habit 4).

Each partition's batch is applied in one transaction together with the partition's next
offset, and on assignment the consumer seeks to the stored offsets. Kafka's committed
offsets are not used: PostgreSQL holds the position, so a record's effect and the fact
that it was applied cannot part. A record that cannot be used goes to the dead-letter
topic with the reason; any other error rolls the batch back and retries it with backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog
from aiokafka import TopicPartition
from asyncpg.exceptions import DataError, IntegrityConstraintViolationError

from baton_approvals.db import Connection, Pool
from baton_approvals.metrics import BATCH_FAILURES, POSITION, RECORDS
from baton_common.kafka import ConsumedRecord, OutboundRecord
from baton_common.positions import lock_position, store_position
from baton_common.projection import Backoff, PositionListener, ProjectionLoop, RecordConsumer
from baton_common.publishing import Publisher

__all__ = ["Backoff", "PositionListener", "Projector", "RecordConsumer", "RecordHandler"]

log = structlog.get_logger(__name__)

RecordHandler = Callable[[Connection, ConsumedRecord], Awaitable[str | None]]
"""Applies one record inside the caller's transaction; returns why it is unusable, or None."""

_POLL_MS: Final = 1000


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
    ) -> None:
        super().__init__(
            consumer=consumer, pool=pool, name=name, dlq_topic=dlq_topic, position=POSITION
        )
        self._pool: Pool = pool
        self._handle = handle
        self._publisher = publisher

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
                    dead.append(self._dead_letter(record, reason))
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
