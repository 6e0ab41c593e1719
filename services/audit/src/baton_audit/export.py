"""Exports: a run or a time range as JSONL or CSV, streamed; an evidence bundle per run.

Rows come from a server-side cursor and leave as bytes chunk by chunk, so memory stays
flat however many runs are exported. JSONL lines are the events as written, CloudEvents
in JSON (structured) form, so each line can be re-verified against its hash. CSV columns
are :data:`CSV_COLUMNS` (docs/audit.md).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel

from baton_audit.db import Pool
from baton_audit.store import ENVELOPE, EVENT_ORDER, AuditStore, envelope_document
from baton_common.envelope import Envelope
from baton_common.hashing import GENESIS, chain_hash, verify_chain

__all__ = ["CSV_COLUMNS", "ExportFormat", "ExportRange", "evidence_bundle", "stream_events"]

ExportFormat = Literal["jsonl", "csv"]

CSV_COLUMNS: Final = (
    "run_id",
    "seq",
    "time",
    "type",
    "event_id",
    "source",
    "story_id",
    "story_version",
    "causation_id",
    "correlation_id",
    "actor",
    "prevhash",
    "hash",
    "data",
)
"""The CSV export's header; ``data`` is the event payload as compact JSON."""

_ROWS_PER_CHUNK: Final = 500


class ExportRange(BaseModel):
    """One run, or the runs started in ``[since, until)``."""

    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _csv_row(envelope: dict[str, object]) -> list[object]:
    return [
        envelope.get("subject"),
        envelope.get("seq"),
        envelope.get("time"),
        envelope.get("type"),
        envelope.get("id"),
        envelope.get("source"),
        envelope.get("storyid"),
        envelope.get("storyversion"),
        envelope.get("causationid"),
        envelope.get("correlationid"),
        envelope.get("actor"),
        envelope.get("prevhash"),
        envelope.get("hash"),
        _dumps(envelope.get("data")),
    ]


async def stream_events(pool: Pool, scope: ExportRange, fmt: ExportFormat) -> AsyncIterator[bytes]:
    """The events of the runs in ``scope``, run by run in start order, as encoded chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(CSV_COLUMNS)
    async with pool.acquire() as conn, conn.transaction():
        rows = 0
        query = (
            f"select {ENVELOPE} from events e join runs r on r.run_id = e.run_id"
            " where ($1::text is null or e.run_id = $1)"
            " and ($2::timestamptz is null or r.started_at >= $2)"
            " and ($3::timestamptz is null or r.started_at < $3)"
            f" order by r.started_at nulls last, e.run_id, {EVENT_ORDER.removeprefix('order by ')}"
        )
        async for row in conn.cursor(
            query, scope.run_id, scope.since, scope.until, prefetch=_ROWS_PER_CHUNK
        ):
            envelope = envelope_document(row)
            if fmt == "csv":
                writer.writerow(_csv_row(envelope))
            else:
                buffer.write(_dumps(envelope))
                buffer.write("\n")
            rows += 1
            if rows % _ROWS_PER_CHUNK == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


class ChainLink(BaseModel):
    seq: int | None
    event_id: str
    type: str
    prevhash: str | None
    hash: str | None
    recomputed: str
    links: bool
    """``prevhash`` is the previous event's ``hash`` and ``hash`` is the recomputed one."""


class ChainProof(BaseModel):
    """Each event's stored and recomputed hash: anyone can check it with SHA-256."""

    algorithm: str = "sha256 over canonical JSON of the CloudEvent without `hash`"
    genesis: str = GENESIS
    intact: bool
    problem: str | None
    head: str | None
    links: list[ChainLink]


def chain_proof(envelopes: list[Envelope]) -> ChainProof:
    links = []
    previous = GENESIS
    for envelope in envelopes:
        recomputed = chain_hash(envelope)
        links.append(
            ChainLink(
                seq=envelope.seq,
                event_id=envelope.id,
                type=envelope.type,
                prevhash=envelope.prevhash,
                hash=envelope.hash,
                recomputed=recomputed,
                links=envelope.prevhash == previous and envelope.hash == recomputed,
            )
        )
        previous = envelope.hash or ""
    problem = verify_chain(envelopes)
    head = envelopes[-1].hash if envelopes else None
    return ChainProof(intact=problem is None, problem=problem, head=head, links=links)


async def evidence_bundle(store: AuditStore, run_id: str) -> bytes | None:
    """A zip of everything the audit store knows about a run, or None for an unknown run.

    Files: ``run.json``, ``timeline.jsonl`` (events as written), ``story.yaml`` (the
    story version's YAML, when published), ``approvals.json``, ``attempts.json``,
    ``ai_interactions.json``, ``chain.json`` (the hash-chain proof) and ``manifest.json``.
    """
    run = await store.run(run_id)
    if run is None:
        return None
    envelopes = await store.envelopes(run_id)
    files: dict[str, str] = {
        "run.json": run.model_dump_json(indent=2),
        "timeline.jsonl": "".join(e.model_dump_json() + "\n" for e in envelopes),
        "approvals.json": _json_list(await store.approvals(run_id)),
        "attempts.json": _json_list(await store.attempts(run_id)),
        "ai_interactions.json": _json_list(await store.ai_interactions(run_id)),
        "chain.json": chain_proof(envelopes).model_dump_json(indent=2),
    }
    if run.story_id is not None and run.story_version is not None:
        story = await store.story_version(run.story_id, run.story_version)
        if story is not None:
            files["story.yaml"] = story.source
    manifest = {
        "run_id": run_id,
        "story": f"{run.story_id}:{run.story_version}",
        "events": len(envelopes),
        "files": sorted([*files, "manifest.json"]),
    }
    files["manifest.json"] = json.dumps(manifest, indent=2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in sorted(files):
            # A fixed date, so the same run gives the same bundle bytes.
            info = zipfile.ZipInfo(f"{run_id}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            bundle.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _json_list(items: Sequence[BaseModel]) -> str:
    return json.dumps([item.model_dump(mode="json") for item in items], indent=2)
