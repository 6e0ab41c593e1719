"""The audit store in PostgreSQL: the projection's writes and the API's reads."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import structlog
from pydantic import BaseModel, ConfigDict, JsonValue

from baton_audit.db import Connection, Pool, Row
from baton_audit.metrics import EVENTS
from baton_audit.projection import (
    ApprovalDecision,
    ApprovalRequest,
    AuditStatus,
    EventRow,
    RunRow,
    RunSummary,
    approval_change,
    event_row,
    next_run,
    parse_event,
)
from baton_common.envelope import Envelope, EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord

__all__ = ["ApprovalRecord", "AuditStore", "TimelineEntry", "apply_record"]

log = structlog.get_logger(__name__)

_SUMMARY: Final = (
    "run_id, story_id, story_version, status, started_at, ended_at, last_seq, correlation_id,"
    " dedup_key, event_count, updated_at"
)
_TIMELINE: Final = "seq, type, time, id, causationid, correlationid, actor, data, prevhash, hash"
_APPROVAL: Final = (
    "gate_id, run_id, step, approvers, message, requested_at, requested_event_id, decided_at,"
    " decision, approver, comment, channel, decided_event_id"
)
_EVENT_ORDER: Final = "order by seq nulls last, kafka_topic, kafka_partition, kafka_offset"


async def insert_event(conn: Connection, row: EventRow) -> bool:
    """Store one event; False if its log position is stored already."""
    status = await conn.execute(
        "insert into events (kafka_topic, kafka_partition, kafka_offset, id, run_id, seq, type,"
        " time, source, causationid, correlationid, actor, storyid, storyversion, prevhash, hash,"
        " data, envelope) values"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        " on conflict do nothing",
        row.kafka_topic,
        row.kafka_partition,
        row.kafka_offset,
        row.id,
        row.run_id,
        row.seq,
        row.type,
        row.time,
        row.source,
        row.causationid,
        row.correlationid,
        row.actor,
        row.storyid,
        row.storyversion,
        row.prevhash,
        row.hash,
        row.data,
        row.envelope,
    )
    return status.endswith(" 1")


async def load_run(conn: Connection, run_id: str, *, for_update: bool = False) -> RunRow | None:
    row = await conn.fetchrow(
        f"select {_SUMMARY}, state from runs where run_id = $1"
        + (" for update" if for_update else ""),
        run_id,
    )
    return RunRow.model_validate(dict(row)) if row is not None else None


async def save_run(conn: Connection, run: RunRow) -> None:
    await conn.execute(
        f"insert into runs ({_SUMMARY}, state)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " on conflict (run_id) do update set story_id = excluded.story_id,"
        " story_version = excluded.story_version, status = excluded.status,"
        " started_at = excluded.started_at, ended_at = excluded.ended_at,"
        " last_seq = excluded.last_seq, correlation_id = excluded.correlation_id,"
        " dedup_key = excluded.dedup_key, event_count = excluded.event_count,"
        " updated_at = excluded.updated_at, state = excluded.state",
        run.run_id,
        run.story_id,
        run.story_version,
        run.status.value,
        run.started_at,
        run.ended_at,
        run.last_seq,
        run.correlation_id,
        run.dedup_key,
        run.event_count,
        run.updated_at,
        run.state.model_dump(mode="json") if run.state is not None else None,
    )


async def save_approval(conn: Connection, change: ApprovalRequest | ApprovalDecision) -> None:
    if isinstance(change, ApprovalRequest):
        await conn.execute(
            "insert into approvals (gate_id, run_id, step, approvers, message, requested_at,"
            " requested_event_id) values ($1, $2, $3, $4, $5, $6, $7)"
            " on conflict (gate_id) do update set run_id = excluded.run_id,"
            " step = excluded.step, approvers = excluded.approvers, message = excluded.message,"
            " requested_at = excluded.requested_at,"
            " requested_event_id = excluded.requested_event_id",
            change.gate_id,
            change.run_id,
            change.step,
            change.approvers,
            change.message,
            change.requested_at,
            change.requested_event_id,
        )
    else:
        await conn.execute(
            "insert into approvals (gate_id, run_id, step, decided_at, decision, approver,"
            " comment, channel, decided_event_id) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " on conflict (gate_id) do update set decided_at = excluded.decided_at,"
            " decision = excluded.decision, approver = excluded.approver,"
            " comment = excluded.comment, channel = excluded.channel,"
            " decided_event_id = excluded.decided_event_id",
            change.gate_id,
            change.run_id,
            change.step,
            change.decided_at,
            change.decision,
            change.approver,
            change.comment,
            change.channel,
            change.decided_event_id,
        )


async def apply_record(conn: Connection, record: ConsumedRecord) -> str | None:
    """Apply one ``baton.runs`` record; return why it is unusable, or None.

    An envelope whose payload is not a known event is stored all the same (the log
    holds it, so the audit store does) but changes no run state.
    """
    try:
        envelope = decode_record(record.value, record.headers)
    except EnvelopeError as exc:
        return str(exc)
    run_id = envelope.subject
    if not run_id:
        return "envelope has no subject: a run event's subject is its run id"
    event, problem = parse_event(envelope)
    if problem is not None:
        EVENTS.labels("false").inc()
        log.warning("event stored without effect on its run", event_id=envelope.id, reason=problem)
    row = event_row(
        envelope,
        run_id=run_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )
    if not await insert_event(conn, row):
        log.info("event already stored", event_id=envelope.id, offset=record.offset)
        return None
    previous = await load_run(conn, run_id, for_update=True)
    await save_run(conn, next_run(previous, run_id, envelope, event))
    change = approval_change(envelope, event)
    if change is not None:
        await save_approval(conn, change)
    return None


class TimelineEntry(BaseModel):
    """One event of a run, as the timeline shows it."""

    seq: int | None
    type: str
    time: datetime
    id: str
    causationid: str | None
    correlationid: str | None
    actor: str | None
    data: dict[str, JsonValue]
    prevhash: str | None
    hash: str | None


class ApprovalRecord(BaseModel):
    """One approval gate of a run: who was asked, and who decided what."""

    model_config = ConfigDict(frozen=True)

    gate_id: str
    run_id: str
    step: str
    approvers: list[str]
    message: str | None
    requested_at: datetime | None
    requested_event_id: str | None
    decided_at: datetime | None
    decision: Literal["approved", "denied"] | None
    approver: str | None
    comment: str | None
    channel: str | None
    decided_event_id: str | None


def _rows(rows: list[Row]) -> list[dict[str, object]]:
    return [dict(row) for row in rows]


class AuditStore:
    """Reads of the audit store."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def runs(
        self,
        *,
        story_id: str | None = None,
        status: AuditStatus | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        """Runs newest first, optionally of one story and in one status."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_SUMMARY} from runs"
                " where ($1::text is null or story_id = $1)"
                " and ($2::text is null or status = $2)"
                " order by started_at desc nulls last, run_id desc limit $3",
                story_id,
                status.value if status is not None else None,
                limit,
            )
        return [RunSummary.model_validate(row) for row in _rows(rows)]

    async def run(self, run_id: str) -> RunRow | None:
        async with self._pool.acquire() as conn:
            return await load_run(conn, run_id)

    async def timeline(self, run_id: str) -> list[TimelineEntry]:
        """A run's events in log order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_TIMELINE} from events where run_id = $1 {_EVENT_ORDER}", run_id
            )
        return [TimelineEntry.model_validate(row) for row in _rows(rows)]

    async def envelopes(self, run_id: str) -> list[Envelope]:
        """A run's envelopes as written, in log order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select envelope from events where run_id = $1 {_EVENT_ORDER}", run_id
            )
        return [Envelope.model_validate(row["envelope"]) for row in rows]

    async def approvals(self, run_id: str) -> list[ApprovalRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_APPROVAL} from approvals where run_id = $1"
                " order by requested_at nulls last, gate_id",
                run_id,
            )
        return [ApprovalRecord.model_validate(row) for row in _rows(rows)]
