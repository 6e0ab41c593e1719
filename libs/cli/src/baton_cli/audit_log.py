"""Reading ``baton.runs`` straight from Kafka for ``baton audit``: run logs and end offsets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.kafka import make_consumer, read_to_end

__all__ = ["LogRead", "end_offsets", "read_run_logs"]


class LogRead:
    """Run logs as read from the topic, plus the records that are not run events."""

    def __init__(self) -> None:
        self.runs: dict[str, list[Envelope]] = {}
        self.unreadable: list[str] = []


async def read_run_logs(
    bootstrap: str, topic: str, *, run_id: str | None = None, since: datetime | None = None
) -> LogRead:
    """Every run's events in log order (one run lives in one partition).

    With ``since``, only runs that have an event at or after it are kept, each whole from
    its first event, since a chain can only be checked from its start.
    """
    consumer = make_consumer(bootstrap, topic, group_id=None, client_id="baton-cli-audit")
    found = LogRead()
    recent: set[str] = set()
    try:
        await consumer.start()
        async for record in read_to_end(consumer):
            try:
                envelope = decode_record(record.value, record.headers)
            except EnvelopeError as exc:
                found.unreadable.append(f"{record.partition}:{record.offset}: {exc}")
                continue
            subject = envelope.subject
            if not subject or (run_id is not None and subject != run_id):
                continue
            found.runs.setdefault(subject, []).append(envelope)
            if since is not None and envelope.time >= since:
                recent.add(subject)
    finally:
        await consumer.stop()
    if since is not None:
        found.runs = {k: v for k, v in found.runs.items() if k in recent}
    return found


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """The end offset of every partition of ``topics`` (where a reader would stop now)."""
    consumer: AIOKafkaConsumer = make_consumer(
        bootstrap, *topics, group_id=None, client_id="baton-cli-audit"
    )
    try:
        await consumer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=1)
        partitions: list[TopicPartition] = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    result: dict[str, dict[int, int]] = {}
    for tp, offset in ends.items():
        result.setdefault(tp.topic, {})[tp.partition] = offset
    return result
