"""Publishing records to Kafka behind a small protocol, so tests can use an in-memory fake."""

from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer

from baton_common.kafka import OutboundRecord

__all__ = ["KafkaPublisher", "Publisher", "PublisherUnavailable"]


class Publisher(Protocol):
    """Sends one record and returns once the broker acknowledged it (``acks=all``)."""

    async def publish(self, record: OutboundRecord) -> None: ...


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
