"""Rebuild run states from ``baton.runs`` when partitions are assigned (DESIGN.md rule 5).

Recovery starts from the partition's newest snapshot (``snapshot.py``), when there is
one, and replays only the events after the offset it covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.events import EVENT_ADAPTER
from baton_common.state import RunState, evolve
from baton_scheduler.snapshot import Snapshot

__all__ = ["Rebuilt", "rebuild_partition"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A partition's run states, the log end they reflect and how many events were read."""

    states: dict[str, tuple[int, RunState]]
    end_offset: int
    replayed: int


async def rebuild_partition(
    consumer: AIOKafkaConsumer, topic: str, partition: int, snapshot: Snapshot | None = None
) -> Rebuilt:
    """Replay one partition of the event log, after ``snapshot`` if given.

    ``consumer`` is a started, group-less, ``read_committed`` consumer used only here.
    """
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    if snapshot is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, snapshot.runs_offset)
    end = (await consumer.end_offsets([tp]))[tp]
    runs: dict[str, RunState] = dict(snapshot.states) if snapshot is not None else {}
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
    log.info(
        "partition rebuilt",
        topic=topic,
        partition=partition,
        from_snapshot=snapshot is not None,
        snapshot_runs=len(snapshot.states) if snapshot is not None else 0,
        events=replayed,
        runs=len(runs),
    )
    states = {run_id: (partition, state) for run_id, state in runs.items()}
    return Rebuilt(states, end, replayed)
