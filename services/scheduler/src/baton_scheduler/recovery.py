"""Rebuild run states from ``baton.runs`` when partitions are assigned (DESIGN.md rule 5).

The skeleton replays the partition from its beginning; snapshots that bound recovery
time as the log grows are the engine issue's work.
"""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.events import EVENT_ADAPTER
from baton_common.state import RunState, evolve

__all__ = ["rebuild_partition"]

log = structlog.get_logger(__name__)


async def rebuild_partition(
    consumer: AIOKafkaConsumer, topic: str, partition: int
) -> dict[str, tuple[int, RunState]]:
    """Replay one partition of the event log; return each run's state.

    ``consumer`` is a started, group-less, ``read_committed`` consumer used only here.
    """
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    runs: dict[str, RunState] = {}
    replayed = 0
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        for record in batch.get(tp, []):
            replayed += 1
            try:
                envelope = decode_record(record.value, record.headers)
                event = EVENT_ADAPTER.validate_python(envelope.data)
            except (EnvelopeError, ValidationError) as exc:
                log.error("unreadable event in the log", offset=record.offset, reason=str(exc))
                continue
            if envelope.seq is None:  # a rejection for a run that never existed
                continue
            runs[event.run_id] = evolve(
                runs.get(event.run_id),
                event,
                seq=envelope.seq,
                hash=envelope.hash or "",
                time=envelope.time,
            )
    log.info("partition rebuilt", topic=topic, partition=partition, events=replayed, runs=len(runs))
    return {run_id: (partition, state) for run_id, state in runs.items()}
