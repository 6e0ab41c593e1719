"""Readiness checks every service shares: whether Kafka answers right now."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

__all__ = ["kafka_reachable"]


async def kafka_reachable(
    producer: AIOKafkaProducer | None, *, per_broker_seconds: float = 2.0
) -> str | None:
    """None when a broker of ``producer``'s cluster has (or opens) a connection, else why not.

    A started producer keeps its connections, so the usual answer costs no round trip;
    after a broker restart the check reconnects, bounded by ``per_broker_seconds`` per broker.
    """
    if producer is None:
        return "the Kafka producer is not started"
    client = producer.client
    brokers = sorted(client.cluster.brokers(), key=lambda b: b.nodeId)
    if not brokers:
        return "no Kafka broker known yet (cluster metadata not fetched)"
    for broker in brokers:
        try:
            async with asyncio.timeout(per_broker_seconds):
                if await client.ready(broker.nodeId):
                    return None
        except (TimeoutError, KafkaError, OSError):
            continue
    where = ", ".join(f"{b.host}:{b.port}" for b in brokers)
    return f"no Kafka broker answers ({where})"
