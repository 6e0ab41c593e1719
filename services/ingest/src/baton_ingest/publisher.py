"""Publishing records to Kafka behind a small protocol, so tests can use an in-memory fake."""

from __future__ import annotations

import time
from typing import Protocol

from aiokafka import AIOKafkaProducer
from prometheus_client import Histogram

from baton_common.kafka import PRODUCE_SECONDS, OutboundRecord

__all__ = ["KafkaPublisher", "Publisher", "PublisherUnavailable"]


class Publisher(Protocol):
    """Sends one record and returns once the broker acknowledged it (``acks=all``)."""

    async def publish(self, record: OutboundRecord) -> None: ...

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        """Send every record, then wait until the broker acknowledged all of them."""
        ...


class PublisherUnavailable(RuntimeError):
    """The producer is not running (not started yet, or stopped)."""


class KafkaPublisher:
    """A :class:`Publisher` over the producer that ``main`` starts in the app's lifespan."""

    def __init__(self) -> None:
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    def attach(self, producer: AIOKafkaProducer | None) -> None:
        """Use ``producer`` (already started), or stop publishing with None."""
        self._producer = producer

    async def publish(self, record: OutboundRecord) -> None:
        if self._producer is None:
            raise PublisherUnavailable("the Kafka producer is not started")
        await record.send(self._producer)

    async def publish_many(self, records: list[OutboundRecord]) -> None:
        # Enqueue everything first and await the delivery futures after: one task for
        # the batch instead of one per record, which is most of a router's Kafka cost.
        if self._producer is None:
            raise PublisherUnavailable("the Kafka producer is not started")
        started = time.perf_counter()
        deliveries = [
            await self._producer.send(
                r.topic, r.value, key=r.key, headers=r.headers, partition=r.partition
            )
            for r in records
        ]
        observed: dict[str, Histogram] = {}
        for record, delivery in zip(records, deliveries, strict=True):
            await delivery
            histogram = observed.get(record.topic)
            if histogram is None:
                histogram = observed[record.topic] = PRODUCE_SECONDS.labels(record.topic)
            histogram.observe(time.perf_counter() - started)
