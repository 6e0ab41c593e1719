"""Reads of the audit store: runs with filters and cursors, timelines, steps, stories."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, computed_field

from baton_audit.db import Connection, Pool, Row
from baton_audit.projection import AuditStatus, RunRow, RunSummary
from baton_common.envelope import Envelope

__all__ = [
    "ENVELOPE",
    "AiRecord",
    "ApprovalRecord",
    "AttemptRecord",
    "AuditStore",
    "CursorError",
    "RunFilter",
    "RunPage",
    "StoryVersion",
    "TimelineEntry",
    "envelope_document",
    "load_run",
]

_SUMMARY: Final = (
    "run_id, story_id, story_version, status, started_at, ended_at, last_seq, correlation_id,"
    " dedup_key, event_count, updated_at"
)
_TIMELINE: Final = "seq, type, time, id, causationid, correlationid, actor, data, prevhash, hash"
_APPROVAL: Final = (
    "gate_id, run_id, step, approvers, message, requested_at, requested_event_id, decided_at,"
    " decision, approver, comment, channel, decided_event_id"
)
_ATTEMPT: Final = (
    "attempt_id, run_id, step, attempt, action, queue, input, dispatched_at, outcome,"
    " finished_at, output, error_kind, error_type, error_message, will_retry"
)
_AI: Final = (
    "attempt_id, run_id, step, attempt, action, provider, model, prompt, response, tool_calls,"
    " input_tokens, output_tokens, occurred_at, event_id, record"
)
EVENT_ORDER: Final = "order by seq nulls last, kafka_topic, kafka_partition, kafka_offset"

# Where each attribute of an event's envelope is stored (``projection.EventRow``): the
# envelope is not stored whole but rebuilt from its row (``envelope_document``).
_ENVELOPE_COLUMNS: Final = {
    "id": "id",
    "type": "type",
    "source": "source",
    "subject": "run_id",
    "time": "time_text",
    "specversion": "specversion",
    "datacontenttype": "datacontenttype",
    "storyid": "storyid",
    "storyversion": "storyversion",
    "causationid": "causationid",
    "correlationid": "correlationid",
    "actor": "actor",
    "seq": "seq",
    "traceparent": "traceparent",
    "prevhash": "prevhash",
    "hash": "hash",
    "data": "data",
}
assert _ENVELOPE_COLUMNS.keys() == Envelope.model_fields.keys()
# In jsonb's order of keys (shorter first, then bytewise): the order the stored document
# was read back in, so exports write the same lines.
_JSONB_ORDER: Final = sorted(_ENVELOPE_COLUMNS.items(), key=lambda kv: (len(kv[0]), kv[0]))
ENVELOPE: Final = ", ".join(f"e.{column}" for column in dict.fromkeys(_ENVELOPE_COLUMNS.values()))
"""The columns of an ``events e`` row that ``envelope_document`` reads."""


def envelope_document(row: Row) -> dict[str, object]:
    """An event's envelope document as written, from its ``events`` row (``ENVELOPE``)."""
    return {key: row[column] for key, column in _JSONB_ORDER}


class CursorError(ValueError):
    """A pagination cursor that this API did not hand out."""


async def load_run(conn: Connection, run_id: str) -> RunRow | None:
    row = await conn.fetchrow(f"select {_SUMMARY}, state from runs where run_id = $1", run_id)
    return RunRow.model_validate(dict(row)) if row is not None else None


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
    """One approval gate of a run: who was asked, who decided what, and how long it took."""

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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wait_seconds(self) -> float | None:
        """From the gate's opening to its decision."""
        if self.requested_at is None or self.decided_at is None:
            return None
        return (self.decided_at - self.requested_at).total_seconds()


class AttemptRecord(BaseModel):
    """One attempt of a step: its input, outcome, error and duration."""

    model_config = ConfigDict(frozen=True)

    attempt_id: str
    run_id: str
    step: str
    attempt: int
    action: str | None
    queue: str | None
    input: JsonValue
    dispatched_at: datetime | None
    outcome: Literal["succeeded", "failed"] | None
    finished_at: datetime | None
    output: JsonValue
    error_kind: str | None
    error_type: str | None
    error_message: str | None
    will_retry: bool | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def retries(self) -> int:
        """Attempts of the step before this one."""
        return self.attempt - 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> float | None:
        """From dispatch to outcome, by the events' times."""
        if self.dispatched_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.dispatched_at).total_seconds()


class AiRecord(BaseModel):
    """What an AI step saw and said (``output.ai`` of its result)."""

    model_config = ConfigDict(frozen=True)

    attempt_id: str
    run_id: str
    step: str
    attempt: int
    action: str | None
    provider: str | None
    model: str | None
    prompt: JsonValue
    response: JsonValue
    tool_calls: JsonValue
    input_tokens: int | None
    output_tokens: int | None
    occurred_at: datetime
    event_id: str
    record: dict[str, JsonValue]


class StoryVersion(BaseModel):
    """One published story version, with the YAML as published."""

    model_config = ConfigDict(frozen=True)

    story_id: str
    version: int
    owner: str | None
    published_at: datetime
    event_id: str
    source: str


class RunFilter(BaseModel):
    """Which runs to list; every field narrows the list."""

    model_config = ConfigDict(frozen=True)

    story_id: str | None = None
    story_version: int | None = None
    status: AuditStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    correlation_id: str | None = None
    actor: str | None = None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None


def _encode_cursor(run: RunSummary) -> str:
    started = run.started_at.isoformat() if run.started_at is not None else None
    raw = json.dumps([started, run.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, run_id = json.loads(raw)
        if not isinstance(run_id, str) or not (started is None or isinstance(started, str)):
            raise TypeError("cursor fields")
        return (datetime.fromisoformat(started) if started is not None else None), run_id
    except (ValueError, TypeError) as exc:
        raise CursorError(f"not a cursor of this API: {cursor!r}") from exc


def _rows(rows: list[Row]) -> list[dict[str, object]]:
    return [dict(row) for row in rows]


class AuditStore:
    """Reads of the audit store."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> Pool:
        return self._pool

    async def runs(
        self, where: RunFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Runs newest first (by start), a page at a time.

        Raises:
            CursorError: if ``cursor`` is not one this API handed out.
        """
        where = where or RunFilter()
        after_started, after_run = _decode_cursor(cursor) if cursor else (None, None)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_SUMMARY} from runs r"
                " where ($1::text is null or story_id = $1)"
                " and ($2::int is null or story_version = $2)"
                " and ($3::text is null or status = $3)"
                " and ($4::timestamptz is null or started_at >= $4)"
                " and ($5::timestamptz is null or started_at < $5)"
                " and ($6::text is null or correlation_id = $6 or dedup_key = $6)"
                " and ($7::text is null"
                "  or exists (select 1 from events e where e.actor = $7 and e.run_id = r.run_id)"
                "  or exists (select 1 from approvals a where a.approver = $7"
                "   and a.run_id = r.run_id))"
                " and ($9::text is null or ($8::timestamptz is not null and"
                "  (started_at < $8 or (started_at = $8 and run_id < $9) or started_at is null))"
                "  or ($8::timestamptz is null and started_at is null and run_id < $9))"
                " order by started_at desc nulls last, run_id desc limit $10",
                where.story_id,
                where.story_version,
                where.status.value if where.status is not None else None,
                where.since,
                where.until,
                where.correlation_id,
                where.actor,
                after_started,
                after_run,
                limit + 1,
            )
        items = [RunSummary.model_validate(row) for row in _rows(rows)]
        more = len(items) > limit
        items = items[:limit]
        return RunPage(items=items, next_cursor=_encode_cursor(items[-1]) if more else None)

    async def run(self, run_id: str) -> RunRow | None:
        async with self._pool.acquire() as conn:
            return await load_run(conn, run_id)

    async def timeline(self, run_id: str) -> list[TimelineEntry]:
        """A run's events in log order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_TIMELINE} from events where run_id = $1 {EVENT_ORDER}", run_id
            )
        return [TimelineEntry.model_validate(row) for row in _rows(rows)]

    async def envelopes(self, run_id: str) -> list[Envelope]:
        """A run's envelopes as written, in log order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {ENVELOPE} from events e where run_id = $1 {EVENT_ORDER}", run_id
            )
        return [Envelope.model_validate(envelope_document(row)) for row in rows]

    async def approvals(self, run_id: str, step: str | None = None) -> list[ApprovalRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_APPROVAL} from approvals where run_id = $1"
                " and ($2::text is null or step = $2)"
                " order by requested_at nulls last, gate_id",
                run_id,
                step,
            )
        return [ApprovalRecord.model_validate(row) for row in _rows(rows)]

    async def attempts(self, run_id: str, step: str | None = None) -> list[AttemptRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_ATTEMPT} from step_attempts where run_id = $1"
                " and ($2::text is null or step = $2) order by step, attempt, attempt_id",
                run_id,
                step,
            )
        return [AttemptRecord.model_validate(row) for row in _rows(rows)]

    async def ai_interactions(self, run_id: str, step: str | None = None) -> list[AiRecord]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_AI} from ai_interactions where run_id = $1"
                " and ($2::text is null or step = $2) order by occurred_at, attempt_id",
                run_id,
                step,
            )
        return [AiRecord.model_validate(row) for row in _rows(rows)]

    async def stories(self) -> list[StoryVersion]:
        """The latest published version of every story."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select distinct on (story_id) story_id, version, owner, published_at, event_id,"
                " source from stories order by story_id, version desc"
            )
        return [StoryVersion.model_validate(row) for row in _rows(rows)]

    async def story_versions(self, story_id: str) -> list[StoryVersion]:
        """Every published version of a story, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select story_id, version, owner, published_at, event_id, source from stories"
                " where story_id = $1 order by version",
                story_id,
            )
        return [StoryVersion.model_validate(row) for row in _rows(rows)]

    async def story_version(self, story_id: str, version: int) -> StoryVersion | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "select story_id, version, owner, published_at, event_id, source from stories"
                " where story_id = $1 and version = $2",
                story_id,
                version,
            )
        return StoryVersion.model_validate(dict(row)) if row is not None else None
