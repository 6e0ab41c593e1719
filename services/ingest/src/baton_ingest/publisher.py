"""Publishing records to Kafka behind a small protocol, so tests can use an in-memory fake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Protocol, runtime_checkable

from aiokafka import AIOKafkaProducer

from baton_common.kafka import OutboundRecord
from baton_ingest.batches import send_batches
from baton_ingest.gathered import GatheredSends

__all__ = ["HandsOver", "KafkaPublisher", "Publisher", "PublisherUnavailable"]


class Publisher(Protocol):
    """Sends one record and returns once the broker acknowledged it (``acks=all``)."""

    async def publish(self, record: OutboundRecord) -> None: ...

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        """Send every record, then wait until the broker acknowledged all of them."""
        ...

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        """Send every record, sharing produce batches with concurrent callers; for each,
        None once acknowledged, else the error (``TimeoutError`` after ``within`` seconds).
        Never raises: an unavailable producer is every record's error."""
        ...

    async def send_many(self, records: list[OutboundRecord]) -> Awaitable[None]:
        """Hand every record to the producer; the result completes once all are acknowledged.

        The caller may do other work before awaiting the result (the router routes its
        next batch meanwhile); it must await it before counting the records as written.
        """
        ...


@runtime_checkable
class HandsOver(Protocol):
    """A publisher that can also hand records over without a coroutine (ADR 0263)."""

    def hand(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[tuple[asyncio.Future[None], int]] | None:
        """Futures settling the records (each with how many), or None: use ``deliver``."""
        ...


class PublisherUnavailable(RuntimeError):
    """The producer is not running (not started yet, or stopped)."""


class KafkaPublisher:
    """A :class:`Publisher` over the producer that ``main`` starts in the app's lifespan."""

    def __init__(self, *, linger_seconds: float = 0.0) -> None:
        self._producer: AIOKafkaProducer | None = None
        self._linger = linger_seconds
        self._gathered: GatheredSends | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    def attach(
        self, producer: AIOKafkaProducer | None, more: Sequence[AIOKafkaProducer] = ()
    ) -> None:
        """Use ``producer`` (already started), or stop publishing with None; ``deliver``'s
        batches also go through the ``more`` producers (started too: ADR 0260)."""
        self._producer = producer
        self._gathered = (
            None if producer is None else GatheredSends(producer, linger=self._linger, more=more)
        )

    async def publish(self, record: OutboundRecord) -> None:
        if self._producer is None:
            raise PublisherUnavailable("the Kafka producer is not started")
        await record.send(self._producer)

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        await (await self.send_many(records))

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        if self._gathered is None:
            return [PublisherUnavailable("the Kafka producer is not started")] * len(records)
        return await self._gathered.deliver(records, within)

    def hand(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[tuple[asyncio.Future[None], int]] | None:
        """``deliver`` without a coroutine (see ``GatheredSends.hand``); None when it
        cannot be done at once (no producer, or no metadata yet): use ``deliver``."""
        if self._gathered is None:
            return None
        return self._gathered.hand(records, within)

    async def send_many(self, records: list[OutboundRecord]) -> Awaitable[None]:
        # A partition batch at a time: one delivery future per batch, not per record.
        if self._producer is None:
            raise PublisherUnavailable("the Kafka producer is not started")
        return await send_batches(self._producer, records)
