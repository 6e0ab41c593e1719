"""What every exactly-once projection of a topic into PostgreSQL shares (STYLE.md habit 4).

A projection (audit, approvals) applies each partition's batch in one transaction with the
partition's next offset (``baton_common.positions``) and, on assignment, seeks to the
stored offsets: Kafka's committed offsets are not used. This module holds the part of
such a consumer that does not depend on what it projects: the poll task's lifecycle, the
readiness check, the seek to the stored positions and the rebalance listener. Each
service's ``Projector`` adds its own ``run`` loop and batch application.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Gauge

from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord, dead_letter
from baton_common.lag import watch_lag
from baton_common.positions import stored_positions
from baton_common.postgres import Pool

__all__ = [
    "Backoff",
    "PositionListener",
    "ProjectionLoop",
    "RecordConsumer",
    "start_projection",
]

log = structlog.get_logger(__name__)


class RecordConsumer(Protocol):
    """The parts of ``AIOKafkaConsumer`` a projector uses."""

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


class ProjectionLoop:
    """A projector's poll task, readiness and seek to the positions stored with its rows.

    Subclasses implement ``run`` (poll and apply forever) and may override ``_sought`` to
    learn where each assigned partition was positioned.
    """

    def __init__(
        self, *, consumer: RecordConsumer, pool: Pool, name: str, dlq_topic: str, position: Gauge
    ) -> None:
        self._consumer = consumer
        self._pool = pool
        self._name = name
        self._dlq_topic = dlq_topic
        self._position = position
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def joined(self) -> bool:
        """Whether partitions have been assigned (possibly none) and positions restored."""
        return self._joined.is_set()

    async def run(self) -> None:
        raise NotImplementedError

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
                log.warning("cannot read stored positions", name=self._name, error=repr(exc))
                await backoff.wait()
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
                self._position.labels(tp.topic, str(tp.partition)).set(offset)
            self._sought(tp, offset)
        log.info(
            "partitions assigned",
            name=self._name,
            partitions=[f"{tp.topic}:{tp.partition}" for tp in partitions],
        )
        self._joined.set()

    def _dead_letter(self, record: ConsumedRecord, reason: str) -> OutboundRecord:
        """The dead letter of a record this projection cannot use, logged."""
        log.warning(
            "record dead-lettered",
            name=self._name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        return dead_letter(
            record,
            dlq_topic=self._dlq_topic,
            consumer=self._name,
            reason=reason,
            time=datetime.now(UTC),
        )

    def _sought(self, tp: TopicPartition, stored: int | None) -> None:
        """Called for each assigned partition with its stored position (None: none stored,
        the partition read from its beginning)."""


class PositionListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks newly assigned partitions to the positions stored with the projection."""

    def __init__(self, projector: ProjectionLoop) -> None:
        self._projector = projector

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Nothing to save: positions are written with the records' effects.
        log.info(
            "partitions revoked", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._projector.seek_to_stored(assigned)


async def start_projection(
    stack: AsyncExitStack,
    projector: ProjectionLoop,
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    service: str,
) -> None:
    """Subscribe ``consumer`` to ``topics`` with the positions listener, start it, the
    projector's loop and the lag watch; ``stack`` stops them in the reverse order."""
    consumer.subscribe(list(topics), listener=PositionListener(projector))
    await consumer.start()
    stack.push_async_callback(consumer.stop)
    projector.start()
    stack.callback(watch_lag(consumer, service).cancel)
    stack.push_async_callback(projector.stop)
