"""kafka_reachable on the real Kafka: ready with a started producer, a reason otherwise."""

from __future__ import annotations

import pytest

from baton_common.kafka import make_producer
from baton_common.readiness import kafka_reachable

pytestmark = pytest.mark.integration


async def test_a_started_producer_reaches_kafka(kafka_bootstrap: str) -> None:
    producer = make_producer(kafka_bootstrap, client_id="readiness-test")
    assert await kafka_reachable(producer) == (
        "no Kafka broker known yet (cluster metadata not fetched)"
    )
    await producer.start()
    try:
        assert await kafka_reachable(producer) is None
    finally:
        await producer.stop()


async def test_no_producer_is_a_reason() -> None:
    assert await kafka_reachable(None) == "the Kafka producer is not started"
