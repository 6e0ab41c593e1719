"""Snapshots of a partition's run states, so recovery replays only the log's tail (ADR 0102).

A snapshot of ``baton.runs`` partition *p* is a set of records on the compacted
``baton.snapshots`` topic, written in the same Kafka transaction as the command batch
whose events it includes: chunks keyed ``<runs topic>:<p>:chunk:<i>`` holding run states,
then a manifest keyed ``<runs topic>:<p>:manifest`` naming the snapshot id, the chunk
count and ``runs_offset``, the first ``baton.runs`` offset the snapshot does not cover.
Compaction keeps the newest record per key; a reader uses the newest manifest and only
chunks carrying its snapshot id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, ValidationError

from baton_common.envelope import EnvelopeError, data_json, decode_record, unchecked_envelope
from baton_common.kafka import OutboundRecord, outbound, to_envelope
from baton_common.outbound_records import record as encoded_record
from baton_common.state import RunState

__all__ = ["Snapshot", "load_snapshot", "snapshot_records", "state_json"]

log = structlog.get_logger(__name__)

SOURCE = "baton/scheduler/snapshots"
CHUNK_BYTES = 256 * 1024  # well under Kafka's default 1 MiB record limit
CHUNK_TYPE: Final = "baton.snapshot.chunk.v1"


class SnapshotManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["baton.snapshot.manifest.v1"] = "baton.snapshot.manifest.v1"
    snapshot_id: str
    runs_topic: str
    partition: int
    runs_offset: int
    chunks: int
    runs: int


class SnapshotChunk(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["baton.snapshot.chunk.v1"] = CHUNK_TYPE
    snapshot_id: str
    index: int
    states: list[RunState]


@dataclass(frozen=True, slots=True)
class Snapshot:
    runs_offset: int
    states: dict[str, RunState]


def _key(runs_topic: str, partition: int, suffix: str) -> str:
    return f"{runs_topic}:{partition}:{suffix}"


def state_json(state: RunState) -> bytes:
    """One run state as a snapshot chunk holds it: the JSON ``encode_record`` writes for
    ``state.model_dump(mode="json")``."""
    return data_json(state.model_dump(mode="json"))


def snapshot_records(
    *,
    snapshot_topic: str,
    runs_topic: str,
    partition: int,
    runs_offset: int,
    states: Iterable[RunState | bytes],
    snapshot_id: str,
    time: datetime,
) -> list[OutboundRecord]:
    """The records of one snapshot: chunks of states, then the manifest.

    A state may be given as its :func:`state_json` already (the run store keeps finished
    runs so): a chunk's value is its states' JSON put together, not dumped again.
    """
    chunks: list[list[bytes]] = [[]]
    size = 0
    count = 0
    for state in states:
        encoded = state if isinstance(state, bytes) else state_json(state)
        if chunks[-1] and size + len(encoded) > CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(encoded)
        size += len(encoded)
        count += 1
    records = []
    for index, chunk in enumerate(chunks):
        value = orjson.dumps(
            {
                "type": CHUNK_TYPE,
                "snapshot_id": snapshot_id,
                "index": index,
                "states": [orjson.Fragment(s) for s in chunk],
            },
            option=orjson.OPT_SORT_KEYS,
        )
        key = _key(runs_topic, partition, f"chunk:{index}")
        attributes = {"id": f"{snapshot_id}:{index}", "type": CHUNK_TYPE, "source": SOURCE}
        # the envelope names the record's attributes; its value is the chunk JSON above
        envelope = unchecked_envelope({**attributes, "time": time}, {})
        records.append(encoded_record(snapshot_topic, key, envelope, partition=0, value=value))
    manifest = SnapshotManifest(
        snapshot_id=snapshot_id,
        runs_topic=runs_topic,
        partition=partition,
        runs_offset=runs_offset,
        chunks=len(chunks),
        runs=count,
    )
    envelope = to_envelope(manifest, id=f"{snapshot_id}:manifest", source=SOURCE, time=time)
    records.append(
        outbound(snapshot_topic, _key(runs_topic, partition, "manifest"), envelope, partition=0)
    )
    return records


async def load_snapshot(
    consumer: AIOKafkaConsumer, snapshot_topic: str, runs_topic: str, partition: int
) -> Snapshot | None:
    """The newest complete snapshot of ``runs_topic`` partition ``partition``, if any.

    ``consumer`` is a started, group-less, ``read_committed`` consumer used only here.
    """
    tp = TopicPartition(snapshot_topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    prefix = _key(runs_topic, partition, "").encode()
    latest: dict[bytes, tuple[bytes | None, list[tuple[str, bytes]]]] = {}
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        for record in batch.get(tp, []):
            if record.key is not None and record.key.startswith(prefix):
                latest[record.key] = (record.value, list(record.headers))
    manifest_record = latest.get(prefix + b"manifest")
    if manifest_record is None:
        return None
    try:
        manifest = SnapshotManifest.model_validate(decode_record(*manifest_record).data)
        states: dict[str, RunState] = {}
        for index in range(manifest.chunks):
            found = latest.get(prefix + f"chunk:{index}".encode())
            if found is None:
                raise ValueError(f"chunk {index} is missing")
            value = found[0]
            if value is None:
                raise ValueError(f"chunk {index} was deleted")
            # binary mode: the record value is the payload's JSON; parse it in one pass
            chunk = SnapshotChunk.model_validate_json(value)
            if chunk.snapshot_id != manifest.snapshot_id:
                raise ValueError(f"chunk {index} belongs to another snapshot")
            states.update((s.run_id, s) for s in chunk.states)
    except (EnvelopeError, ValidationError, ValueError) as exc:
        log.error("snapshot unusable; replaying the whole partition", reason=str(exc))
        return None
    return Snapshot(manifest.runs_offset, states)
