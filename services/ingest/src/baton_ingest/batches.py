"""The router's records handed to the producer a partition batch at a time
(:func:`baton_common.partition_batches.submit_batches`): one delivery future per batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from baton_common.kafka import PRODUCE_SECONDS, OutboundRecord
from baton_common.metrics import labelled
from baton_common.partition_batches import Submitted, submit_batches

__all__ = ["send_batches"]


async def send_batches(
    producer: AIOKafkaProducer, records: Sequence[OutboundRecord]
) -> asyncio.Task[None]:
    """Hand every record to ``producer``; the result completes once all are acknowledged.

    If the result fails, some records may have been written: the caller retries the whole
    set (the router's records are idempotent by run id).
    """
    started = time.perf_counter()
    submitted = await submit_batches(producer, records)
    return asyncio.ensure_future(_acknowledged(submitted, started))


async def _acknowledged(submitted: list[Submitted], started: float) -> None:
    """Wait for every delivery; observe the produce latency once per batch."""
    await asyncio.gather(*(batch.delivery for batch in submitted))  # retrieves every error
    elapsed = time.perf_counter() - started
    for batch in submitted:
        labelled(PRODUCE_SECONDS, batch.partition.topic).observe(elapsed)
