"""Writes of the projection: a batch of records in a few statements (COPY and pipelines).

The batch path is what makes the projection fast: events go in with one ``COPY``, each
run in the batch is read once, folded in memory with ``evolve`` and written once. The
projector calls it inside a savepoint; if PostgreSQL refuses the batch for its data, the
projector applies the records one at a time (a batch of one) to dead-letter the culprit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Final

import structlog
from pydantic import JsonValue, ValidationError

from baton_audit.attempts import (
    AiInteraction,
    AttemptFinished,
    AttemptStarted,
    ai_interaction,
    attempt_change,
)
from baton_audit.db import Connection, column
from baton_audit.governance import APPROVED_TYPE, approval_row, write_approvals
from baton_audit.metrics import EVENTS
from baton_audit.projection import (
    ApprovalDecision,
    ApprovalEscalation,
    ApprovalRequest,
    EventRow,
    RunRow,
    approval_change,
    event_row,
    fold_run,
    parse_event,
)
from baton_audit.run_rows import RunRows
from baton_audit.set_writes import write_attempts, write_gate_changes, write_runs
from baton_common.envelope import Envelope, EnvelopeError, decode_record, decode_record_finite
from baton_common.events import RunEvent
from baton_common.kafka import ConsumedRecord
from baton_common.records import StoryPublished
from baton_common.telemetry import record_span, tracing_enabled

__all__ = ["AuditWriter", "Unusable"]

log = structlog.get_logger(__name__)

Unusable = tuple[ConsumedRecord, str]
"""A record that cannot be applied, and why (it goes to the dead-letter topic)."""

_EVENT_COLUMNS: Final = list(EventRow._fields)
_AI: Final = (
    "insert into ai_interactions (attempt_id, run_id, step, attempt, action, provider, model,"
    " prompt, response, tool_calls, input_tokens, output_tokens, occurred_at, event_id, record)"
    " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    " on conflict (run_id, attempt_id) do nothing"
)
_STORY: Final = (
    "insert into stories (story_id, version, owner, published_at, event_id, source, definition,"
    " kafka_topic, kafka_partition, kafka_offset) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " on conflict (story_id, version) do nothing"
)


@dataclass
class _Batch:
    """What one batch of run events writes, gathered before any statement runs."""

    events: list[EventRow] = field(default_factory=list)
    runs: dict[str, RunRow] = field(default_factory=dict)
    stored: frozenset[str] = frozenset()
    """The runs whose rows exist (locked by this batch)."""
    finite: set[str] = field(default_factory=set)
    """The runs whose state is known to hold no NaN or infinity (``RunRows``)."""
    all_finite: bool = True
    """Every payload of the batch was parsed by orjson: none holds a NaN or infinity."""
    approvals: list[ApprovalRequest | ApprovalDecision | ApprovalEscalation] = field(
        default_factory=list
    )
    started: list[AttemptStarted] = field(default_factory=list)
    finished: list[AttemptFinished] = field(default_factory=list)


_GETTERS: dict[type, Callable[[object], tuple[object, ...]]] = {}


def _values(row: object) -> tuple[object, ...]:
    """A dataclass's field values, not copied (``dataclasses.astuple`` deep-copies them);
    a named tuple as it is."""
    if isinstance(row, tuple):
        return row
    kind = type(row)
    getter = _GETTERS.get(kind)
    if getter is None:
        names = [f.name for f in fields(row)]  # type: ignore[arg-type]
        getter = _GETTERS[kind] = attrgetter(*names)  # with 2+ names it returns a tuple
    return getter(row)


class AuditWriter:
    """Applies batches of one partition of ``baton.runs`` or ``baton.stories``."""

    def __init__(self, *, runs_topic: str, stories_topic: str, kept_runs: int = 0) -> None:
        """``kept_runs``: how many runs' rows to keep in memory between batches (``RunRows``)."""
        self._runs_topic = runs_topic
        self._stories_topic = stories_topic
        self._rows = RunRows(kept_runs)

    async def apply(self, conn: Connection, records: Sequence[ConsumedRecord]) -> list[Unusable]:
        """Apply records of one partition, in order, inside the caller's transaction."""
        if not records:
            return []
        topic = records[0].topic
        if topic == self._stories_topic:
            return await self._stories(conn, records)
        if topic == self._runs_topic:
            return await self._runs(conn, records)
        return [(r, f"audit does not project topic {r.topic}") for r in records]

    async def _stories(self, conn: Connection, records: Sequence[ConsumedRecord]) -> list[Unusable]:
        unusable: list[Unusable] = []
        rows: list[tuple[object, ...]] = []
        approvals: list[tuple[object, ...]] = []
        for record in records:
            try:
                envelope = decode_record(record.value, record.headers)
                if envelope.type == APPROVED_TYPE:  # change control (ADR 0911)
                    approvals.append(approval_row(envelope, record))
                    continue
                published = StoryPublished.model_validate(envelope.data)
            except EnvelopeError as exc:
                unusable.append((record, str(exc)))
                continue
            except ValidationError as exc:
                unusable.append((record, f"not a published story: {exc.errors()[0]['msg']}"))
                continue
            story = published.story
            rows.append(
                (
                    story.id,
                    story.version,
                    story.owner,
                    envelope.time,
                    envelope.id,
                    published.source,
                    story.model_dump(mode="json"),
                    record.topic,
                    record.partition,
                    record.offset,
                )
            )
        if rows:
            await conn.executemany(_STORY, rows)
        await write_approvals(conn, approvals)
        return unusable

    async def _runs(self, conn: Connection, records: Sequence[ConsumedRecord]) -> list[Unusable]:
        seen = await self._stored_offsets(conn, records)
        decoded = []
        unusable: list[Unusable] = []
        for record in records:
            if record.offset in seen:
                log.info("event already stored", offset=record.offset)
                continue
            try:
                envelope, finite = decode_record_finite(record.value, record.headers)
            except EnvelopeError as exc:
                unusable.append((record, str(exc)))
                continue
            if not envelope.subject:
                unusable.append(
                    (record, "envelope has no subject: a run event's subject is its run id")
                )
                continue
            decoded.append((record, envelope, finite))
        if not decoded:
            return unusable
        batch = _Batch()
        run_ids = sorted({envelope.subject or "" for _, envelope, _ in decoded})
        batch.runs, batch.finite = await self._rows.lock(conn, run_ids)
        batch.stored = frozenset(batch.runs)
        batch.finite.update(run_id for run_id in run_ids if run_id not in batch.stored)
        unknown = 0
        logs: dict[str, list[tuple[Envelope, RunEvent | None]]] = {}
        traced = tracing_enabled()  # once a batch: the span's attributes cost even unrecorded
        for record, envelope, finite in decoded:
            run_id = envelope.subject or ""
            event, problem = parse_event(envelope)
            if traced:
                record_span(
                    "baton.audit.store",
                    parent=envelope.traceparent,
                    attributes={"baton.run_id": run_id, "baton.event": envelope.type},
                )
            if problem is not None:
                unknown += 1
                log.warning("event stored without effect", event_id=envelope.id, reason=problem)
            batch.events.append(
                event_row(
                    envelope,
                    run_id=run_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    finite=finite,
                )
            )
            logs.setdefault(run_id, []).append((envelope, event))
            if not finite:
                batch.finite.discard(run_id)
                batch.all_finite = False
            change = approval_change(envelope, event)
            if change is not None:
                batch.approvals.append(change)
            attempt = attempt_change(envelope, event)
            if isinstance(attempt, AttemptStarted):
                batch.started.append(attempt)
            elif isinstance(attempt, AttemptFinished):
                batch.finished.append(attempt)
        # One row per run and batch: the intermediate rows would not be written.
        for run_id, run_log in logs.items():
            batch.runs[run_id] = fold_run(batch.runs.get(run_id), run_id, run_log)
        # Counted once a batch: a labelled counter's lookup per event adds up.
        EVENTS.labels("true").inc(len(decoded) - unknown)
        if unknown:
            EVENTS.labels("false").inc(unknown)
        await self._write(conn, batch)
        self._rows.keep(batch.runs.values(), batch.finite)
        return unusable

    async def _stored_offsets(
        self, conn: Connection, records: Sequence[ConsumedRecord]
    ) -> set[int]:
        """Offsets of ``records`` whose events are stored already (normally none)."""
        first = records[0]
        highest = await conn.fetchval(
            "select max(kafka_offset) from events where kafka_topic = $1 and kafka_partition = $2",
            first.topic,
            first.partition,
        )
        if not isinstance(highest, int) or highest < min(r.offset for r in records):
            return set()  # the usual case, answered from the primary key's last entry
        stored = await conn.fetch(
            "select kafka_offset from events where kafka_topic = $1 and kafka_partition = $2"
            " and kafka_offset = any($3::bigint[])",
            first.topic,
            first.partition,
            [r.offset for r in records],
        )
        return {column(row, "kafka_offset", int) for row in stored}

    async def _write(self, conn: Connection, batch: _Batch) -> None:
        await conn.copy_records_to_table("events", records=batch.events, columns=_EVENT_COLUMNS)
        await write_runs(conn, batch.runs.values(), batch.stored, batch.finite)
        await write_gate_changes(conn, batch.approvals)
        await write_attempts(conn, batch.started, batch.finished, finite=batch.all_finite)
        if batch.finished:
            interactions = await self._interactions(conn, batch)
            if interactions:
                await conn.executemany(_AI, [_values(i) for i in interactions])

    async def _interactions(self, conn: Connection, batch: _Batch) -> list[AiInteraction]:
        rows = await conn.fetch(
            "select run_id, attempt_id, action, input from step_attempts"
            " where (run_id, attempt_id) in (select * from unnest($1::text[], $2::text[]))",
            [f.run_id for f in batch.finished if f.outcome == "succeeded"],
            [f.attempt_id for f in batch.finished if f.outcome == "succeeded"],
        )
        dispatch: dict[tuple[str, str], tuple[str | None, JsonValue]] = {}
        for row in rows:
            action, input = row["action"], row["input"]
            dispatch[column(row, "run_id", str), column(row, "attempt_id", str)] = (
                action if isinstance(action, str) else None,
                input if isinstance(input, dict) else None,
            )
        found = []
        for finished in batch.finished:
            action, input = dispatch.get((finished.run_id, finished.attempt_id), (None, None))
            interaction = ai_interaction(finished, action=action, input=input)
            if interaction is not None:
                found.append(interaction)
        return found
