"""Commands taken from the consumer while a batch is decided and committed (ADR 0140).

aiokafka fetches a partition again only once the records it fetched for it have been taken
with ``getmany``. A loop that calls ``getmany`` only between batches therefore leaves the
commands that reach the broker during a batch there until the *next* batch has begun: they
wait for two batches before their own. A :class:`CommandFeed` takes records from the
consumer in its own task as soon as they are fetched and holds them, so each batch starts
with everything that arrived while the previous one ran.

The consumer's position runs ahead of the records decided; the offsets a transaction
commits are still those of the records in its batch, so a crash or an aborted batch replays
from the committed offsets as before. Whoever seeks the consumer drops what the feed holds
for those partitions first (:meth:`CommandFeed.forget`, without awaiting in between).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from baton_common.kafka import ConsumedRecord

__all__ = ["Batches", "CommandFeed"]

Batches = dict[TopicPartition, list[ConsumedRecord]]


class CommandFeed:
    """Holds up to ``max_held`` fetched records for the command loop."""

    def __init__(self, consumer: AIOKafkaConsumer, *, max_held: int) -> None:
        self._consumer = consumer
        self._max_held = max(1, max_held)
        self._held: Batches = {}
        self._count = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._reader: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Read from the consumer while the context lasts."""
        self._reader = asyncio.create_task(self._read())
        try:
            yield
        finally:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def take(self, limit: int, wait_seconds: float) -> Batches:
        """At most ``limit`` held records, in order per partition; waits up to
        ``wait_seconds`` for the first one. Raises what stopped the reader, if it stopped."""
        if not self._count:
            self._arrived.clear()
            arrived = asyncio.ensure_future(self._arrived.wait())
            watched: set[asyncio.Future[Any]] = {arrived}
            if self._reader is not None:
                watched.add(self._reader)
            await asyncio.wait(watched, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED)
            arrived.cancel()
        if self._reader is not None and self._reader.done():
            self._reader.result()
        taken: Batches = {}
        for tp in list(self._held):
            if limit <= 0:
                break
            records = self._held.pop(tp)
            taken[tp], rest = records[:limit], records[limit:]
            limit -= len(taken[tp])
            self._count -= len(taken[tp])
            if rest:
                self._held[tp] = rest  # behind the other partitions next time
        if self._count < self._max_held:
            self._room.set()
        return taken

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what is held for ``partitions`` (before seeking them, or once revoked)."""
        for tp in partitions:
            self._count -= len(self._held.pop(tp, []))
        if self._count < self._max_held:
            self._room.set()

    async def _read(self) -> None:
        while True:
            await self._room.wait()
            fetched = await self._consumer.getmany(
                timeout_ms=500, max_records=self._max_held - self._count
            )
            for tp, records in fetched.items():
                self._held.setdefault(tp, []).extend(records)
                self._count += len(records)
            if fetched:
                self._arrived.set()
            if self._count >= self._max_held:
                self._room.clear()
