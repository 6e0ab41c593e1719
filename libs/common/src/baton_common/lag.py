"""Consumer lag per topic partition, one helper every consumer loop calls.

``baton_consumer_lag_records{consumer,topic,partition}`` is the number of records between a
consumer's position and the partition's end (the last stable offset for
``read_committed`` consumers, so open transactions do not count). The loop calls
:meth:`LagObserver.observe` after each fetch; it measures at most once per interval.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Gauge

__all__ = ["CONSUMER_LAG", "LagObserver", "consumer_lag_gauge", "watch_lag"]

log = structlog.get_logger(__name__)

_NAME: Final = "baton_consumer_lag_records"
_HELP: Final = "Records between the consumer's position and the partition's end"
_LABELS: Final = ("consumer", "topic", "partition")
_GAUGES: dict[int, Gauge] = {}


def consumer_lag_gauge(registry: CollectorRegistry = REGISTRY) -> Gauge:
    """The lag gauge in ``registry`` (created once per registry)."""
    gauge = _GAUGES.get(id(registry))
    if gauge is None:
        gauge = Gauge(_NAME, _HELP, _LABELS, registry=registry)
        _GAUGES[id(registry)] = gauge
    return gauge


CONSUMER_LAG: Final = consumer_lag_gauge()


class LagObserver:
    """Measures one consumer's lag on its assigned partitions.

    Args:
        consumer: a started consumer.
        name: the ``consumer`` label (the service's consumer, e.g. ``scheduler``).
        interval: seconds between measurements.
        registry: where the gauge lives.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        name: str,
        *,
        interval: float = 1.0,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._consumer = consumer
        self._name = name
        self._interval = interval
        self._gauge = consumer_lag_gauge(registry)
        self._next = 0.0
        self._seen: set[tuple[str, int]] = set()

    async def observe(self, *, force: bool = False) -> None:
        """Update the gauge if the interval has passed; never raises for Kafka errors."""
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self._interval
        current: set[tuple[str, int]] = set()
        for tp in self._consumer.assignment():
            end = self._consumer.last_stable_offset(tp)
            if end is None:
                end = self._consumer.highwater(tp)
            if end is None:  # nothing fetched from it yet
                continue
            try:
                position = await self._consumer.position(tp)
            except (KafkaError, AssertionError, OSError):
                continue
            current.add((tp.topic, tp.partition))
            self._gauge.labels(self._name, tp.topic, str(tp.partition)).set(max(0, end - position))
        for topic, partition in self._seen - current:  # revoked: not ours to report
            try:
                self._gauge.remove(self._name, topic, str(partition))
            except KeyError:
                pass
        self._seen = current

    async def run(self) -> None:
        """Measure every interval until cancelled."""
        while True:
            try:
                await self.observe(force=True)
            except Exception:  # a metric must never stop a service (or its readiness)
                log.warning("consumer lag not measured", consumer=self._name, exc_info=True)
            await asyncio.sleep(self._interval)


def watch_lag(
    consumer: AIOKafkaConsumer, name: str, *, interval: float = 5.0
) -> asyncio.Task[None]:
    """Start measuring ``consumer``'s lag in the background; cancel the task to stop."""
    return asyncio.create_task(
        LagObserver(consumer, name, interval=interval).run(), name=f"lag-{name}"
    )
