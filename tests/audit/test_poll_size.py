"""The projection asks each poll for the configured number of records (ADR 0520)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from baton_audit.consumer import Projector
from baton_audit.db import Connection, Pool
from baton_audit.settings import AuditSettings
from baton_common.kafka import ConsumedRecord
from baton_common.testing import eventually

from .fakes import FakeConsumer, FakePublisher


async def _never(
    conn: Connection, records: Sequence[ConsumedRecord]
) -> list[tuple[ConsumedRecord, str]]:
    raise AssertionError("no records were polled")


async def test_each_poll_asks_for_the_configured_batch() -> None:
    consumer = FakeConsumer()
    projector = Projector(
        consumer=consumer,
        pool=cast(Pool, None),  # never used: no records arrive
        handle=_never,
        publisher=FakePublisher(),
        name="audit",
        dlq_topic="baton.dlq",
        max_records=AuditSettings().batch_records,
    )

    async def polled() -> bool:
        return bool(consumer.polled_max_records)

    projector.start()
    try:
        await eventually(polled, what="a poll")
    finally:
        await projector.stop()

    assert set(consumer.polled_max_records) == {3000}
