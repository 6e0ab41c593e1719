"""Reading ``baton.runs`` straight from Kafka for ``baton audit``: run logs and where they end."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.kafka import make_consumer, read_to_end

__all__ = ["LogRead", "projected_ends", "read_run_logs"]


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


async def projected_ends(bootstrap: str, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """Per partition, the offset after its last committed data record: where a projection
    that has applied everything stands.

    A transactional writer (the scheduler) ends each transaction with a commit marker, which
    takes an offset but is never delivered, so the end offset is one past anything a
    projection can record. Only the tail of each partition is read: a window before the end,
    widened until it holds a record.
    """
    consumer: AIOKafkaConsumer = make_consumer(
        bootstrap, *topics, group_id=None, client_id="baton-cli-audit"
    )
    result: dict[str, dict[int, int]] = {}
    try:
        await consumer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=1)
        partitions: list[TopicPartition] = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            result.setdefault(tp.topic, {})[tp.partition] = await _after_last_record(
                consumer, tp, ends[tp]
            )
    finally:
        await consumer.stop()
    return result


async def _after_last_record(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> int:
    window = 64
    while True:
        start = max(0, end - window)
        consumer.seek(tp, start)
        last: int | None = None
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                last = record.offset
        if last is not None:
            return last + 1
        if start == 0:
            return 0  # nothing committed to project (empty, or only aborted records)
        window *= 16
