"""Kafka helpers: producers and consumers configured the one way Baton uses them.

Producers are idempotent with ``acks=all`` so an acknowledged record is durable;
consumers read committed records only and commit offsets explicitly.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Histogram
from pydantic import BaseModel

from baton_common.envelope import Envelope, Header, build_envelope, encode_record
from baton_common.metrics import labelled
from baton_common.records import DeadLetter

__all__ = [
    "DLQ_COPY_LIMIT",
    "DLQ_RECORDS",
    "PRODUCE_SECONDS",
    "ConsumedRecord",
    "Fetched",
    "OutboundRecord",
    "dead_letter",
    "make_consumer",
    "make_producer",
    "outbound",
    "read_to_end",
    "to_envelope",
]


PRODUCE_SECONDS: Final = Histogram(
    "baton_kafka_produce_seconds",
    "Time from sending a record to the broker's acknowledgement (acks=all), by topic",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DLQ_COPY_LIMIT: Final = 128 * 1024
"""Bytes of a value (and of each key or header) copied into a dead letter. Escaping can
grow undecodable bytes fourfold, so a letter stays far below the broker's 1 MiB default:
a letter that could not be sent would stall the partition it is meant to unblock."""

DLQ_RECORDS: Final = Counter(
    "baton_dlq_records",
    "Records sent to the dead-letter topic, by the consumer that gave up and its source topic",
    ["consumer", "topic"],
)


class ConsumedRecord(Protocol):
    """The parts of an aiokafka ``ConsumerRecord`` Baton reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


Fetched = dict[TopicPartition, list[ConsumedRecord]]
"""What a consumer's ``getmany`` returns: the records fetched, by partition, in offset order."""


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A record ready to send: topic, key, value, headers and an optional partition."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[Header]
    partition: int | None = None

    async def send(self, producer: AIOKafkaProducer) -> None:
        """Send and wait for the broker's acknowledgement."""
        started = time.perf_counter()
        await producer.send_and_wait(
            self.topic, self.value, key=self.key, headers=self.headers, partition=self.partition
        )
        labelled(PRODUCE_SECONDS, self.topic).observe(time.perf_counter() - started)


async def read_to_end(consumer: AIOKafkaConsumer) -> AsyncIterator[ConsumedRecord]:
    """Yield what a started, group-less, subscribed consumer reads until it reaches the end.

    The end is each assigned partition's end offset when the assignment became known.
    A group-less consumer built with topics is assigned all their partitions, which is how
    we learn them (``partitions_for_topic`` stays empty until metadata for them is fetched).
    """
    while not consumer.assignment():
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for record in records:
                yield record
    partitions = sorted(consumer.assignment())
    end = await consumer.end_offsets(partitions)
    while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
        for records in (await consumer.getmany(*partitions, timeout_ms=500)).values():
            for record in records:
                yield record


def make_producer(
    bootstrap: str,
    *,
    client_id: str,
    transactional_id: str | None = None,
    linger_ms: int = 5,
    retry_backoff_ms: int = 100,
    max_batch_size: int = 16_384,
) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; transactional when ``transactional_id`` is set.

    ``linger_ms`` is how long a record may wait for company before it is sent; a
    producer that sends a whole batch at once and then waits for it (the scheduler's
    transactions) loses nothing with 0. ``retry_backoff_ms`` is the wait before a
    retriable error is retried; a transaction that begins while the coordinator still
    writes the previous one's markers is refused (CONCURRENT_TRANSACTIONS) and waits it.
    ``max_batch_size`` bounds the bytes of one partition's records in one produce request
    (aiokafka's default, 16 KiB); a partition's further records wait for the next request.
    Keys are partitioned as aiokafka's default partitioner does, by a faster murmur2.
    """
    # Imported here: that module builds on this one's OutboundRecord.
    from baton_common.partition_batches import default_partitioner

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=linger_ms,
        retry_backoff_ms=retry_backoff_ms,
        request_timeout_ms=30_000,
        max_batch_size=max_batch_size,
        partitioner=default_partitioner,
    )


def make_consumer(
    bootstrap: str,
    *topics: str,
    group_id: str | None,
    client_id: str,
    fetch_max_wait_ms: int = 500,
    max_partition_fetch_bytes: int = 1024 * 1024,
    fetch_max_bytes: int = 50 * 1024 * 1024,
    fetch_min_bytes: int = 1,
) -> AIOKafkaConsumer:
    """A ``read_committed`` consumer with manual commits, starting at the earliest offset.

    ``fetch_max_wait_ms`` bounds how long the broker holds a fetch with nothing new; a
    ``read_committed`` fetch is not answered early when a transaction commits, so
    latency-sensitive consumers (the scheduler's commands) set it low.
    ``max_partition_fetch_bytes`` and ``fetch_max_bytes`` bound what one fetch returns
    per partition and in all (aiokafka's defaults, 1 MiB and 50 MiB); ``fetch_min_bytes``
    is what the broker gathers before answering a fetch early (default: anything).
    """
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        fetch_max_bytes=fetch_max_bytes,
        fetch_min_bytes=fetch_min_bytes,
    )


def to_envelope(
    payload: BaseModel,
    *,
    id: str,
    source: str,
    time: datetime,
    subject: str | None = None,
    as_is: frozenset[str] = frozenset(),
    **extensions: str | int | None,
) -> Envelope:
    """Wrap a contract payload in an envelope whose ``type`` is the payload's ``type``.

    ``as_is`` names payload fields that already hold JSON types only (values a JSON parser
    returned): they are put in ``data`` as they are instead of being dumped again, which
    would copy them unchanged.
    """
    data = payload.model_dump(mode="json", exclude=set(as_is) if as_is else None)
    for name in as_is:
        data[name] = getattr(payload, name)
    # ``model_dump(mode="json")`` returns JSON types only: validate the attributes alone.
    return build_envelope(
        {
            "id": id,
            "type": data["type"],
            "source": source,
            "subject": subject,
            "time": time,
            **extensions,
        },
        data,
    )


def outbound(
    topic: str, key: str | None, envelope: Envelope, *, partition: int | None = None
) -> OutboundRecord:
    """An envelope as a record for ``topic``."""
    value, headers = encode_record(envelope)
    return OutboundRecord(
        topic, key.encode() if key is not None else None, value, headers, partition
    )


def _text(raw: bytes) -> str:
    """At most ``DLQ_COPY_LIMIT`` bytes of ``raw``, as UTF-8 text with escapes."""
    return raw[:DLQ_COPY_LIMIT].decode(errors="backslashreplace")


def dead_letter(
    record: ConsumedRecord, *, dlq_topic: str, consumer: str, reason: str, time: datetime
) -> OutboundRecord:
    """The ``baton.dlq`` record for a record that ``consumer`` could not use.

    Counts it in ``baton_dlq_records_total`` (a dead letter is built only to be sent).
    """
    DLQ_RECORDS.labels(consumer, record.topic).inc()
    letter = DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer=consumer,
        reason=reason,
        key=_text(record.key) if record.key is not None else None,
        value=_text(record.value) if record.value is not None else None,
        headers={k: _text(v) for k, v in record.headers},
        value_truncated=record.value is not None and len(record.value) > DLQ_COPY_LIMIT,
        value_bytes=len(record.value) if record.value is not None else None,
        value_sha256=hashlib.sha256(record.value).hexdigest() if record.value is not None else None,
    )
    envelope = to_envelope(
        letter,
        id=f"dlq:{record.topic}:{record.partition}:{record.offset}",
        source=f"baton/{consumer}",
        time=time,
    )
    value, headers = encode_record(envelope)
    return OutboundRecord(dlq_topic, record.key, value, headers)
