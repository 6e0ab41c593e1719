"""Sending records to Kafka behind a small protocol, so an API can be tested without Kafka.

Shared by the services whose HTTP handlers or projections publish and must know the
record is durable (approvals, audit).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from baton_common.kafka import OutboundRecord

__all__ = ["KafkaPublisher", "PublishError", "Publisher"]


class PublishError(Exception):
    """A record could not be made durable in Kafka; the caller may retry later."""


class Publisher(Protocol):
    async def publish(self, record: OutboundRecord) -> None:
        """Send ``record`` and return once the broker has acknowledged it.

        Raises:
            PublishError: when it is not known to be durable.
        """
        ...


class KafkaPublisher:
    """A :class:`Publisher` over an idempotent ``acks=all`` producer (``make_producer``)."""

    def __init__(self, producer: AIOKafkaProducer, *, timeout: float) -> None:
        self._producer = producer
        self._timeout = timeout

    async def publish(self, record: OutboundRecord) -> None:
        try:
            await asyncio.wait_for(record.send(self._producer), self._timeout)
        except (KafkaError, TimeoutError) as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
