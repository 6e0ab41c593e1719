"""The approval inbox in PostgreSQL: the projection's writes and the API's reads."""

from __future__ import annotations

import json
from typing import Final

import structlog

from baton_approvals.db import Connection, Pool, Row, column
from baton_approvals.gates import (
    CloseGate,
    DecisionRecord,
    Gate,
    GateDetail,
    OpenGate,
    RemindGate,
    StateFilter,
    UnusableRecord,
    gate_change,
)
from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord

__all__ = [
    "GATE_COLUMNS",
    "GateStore",
    "apply_record",
    "close_gate",
    "open_gate",
    "remind_gate",
    "reserve_decision",
]

log = structlog.get_logger(__name__)

GATE_COLUMNS: Final = (
    "gate_id, run_id, story_id, story_version, step, approvers, message, state, opened_at,"
    " opened_event_id, correlation_id, decided_by, comment, closed_at, decision_requested,"
    " decision_requested_by, decision_requested_at, decision_command_id, slack_channel, slack_ts,"
    " required, excluded, context, deadline, require_comment_on_deny, round, escalated_to,"
    " traceparent"
)
_DECISION_COLUMNS: Final = "approver, decision, comment, channel, command_id, requested_at"


async def open_gate(conn: Connection, change: OpenGate) -> bool:
    """Insert a pending gate, or re-open a known one for a later round (an escalation).

    Returns False when nothing changed (a redelivered or older round).
    """
    status = await conn.execute(
        "insert into gates (gate_id, run_id, story_id, story_version, step, approvers, message,"
        " state, opened_at, opened_event_id, correlation_id, required, excluded, context,"
        " deadline, require_comment_on_deny, round, escalated_to, traceparent)"
        " values ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12, $13::jsonb,"
        " $14, $15, $16, $17, $18)"
        " on conflict (gate_id) do nothing",
        change.gate_id,
        change.run_id,
        change.story_id,
        change.story_version,
        change.step,
        change.approvers,
        change.message,
        change.opened_at,
        change.opened_event_id,
        change.correlation_id,
        change.required,
        list(change.excluded),
        json.dumps(change.context) if change.context is not None else None,
        change.deadline,
        change.require_comment_on_deny,
        change.round,
        list(change.escalated_to) if change.escalated_to is not None else None,
        change.traceparent,
    )
    if status.endswith(" 1"):
        return True
    return await _reopen(conn, change)


async def _reopen(conn: Connection, change: OpenGate) -> bool:
    """A later round of a known gate: new approvers and deadline, pending again, and a new
    Slack message (the old one is marked superseded through a follow-up)."""
    row = await conn.fetchrow(
        "select round, slack_channel, slack_ts from gates where gate_id = $1 for update",
        change.gate_id,
    )
    if row is None or column(row, "round", int) >= change.round:
        return False
    channel, ts = row["slack_channel"], row["slack_ts"]
    if isinstance(channel, str) and isinstance(ts, str):
        whom = ", ".join(change.escalated_to or change.approvers)
        await conn.execute(
            "insert into slack_followups (gate_id, kind, channel, ts, text)"
            " values ($1, 'superseded', $2, $3, $4)",
            change.gate_id,
            channel,
            ts,
            f"Escalated to {whom} at {change.opened_at.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        )
    await conn.execute(
        "update gates set approvers = $2, deadline = $3, round = $4, escalated_to = $5,"
        " state = 'pending', decided_by = null, comment = null, closed_at = null,"
        " closed_event_id = null, slack_channel = null, slack_ts = null, slack_shows = null,"
        " slack_attempts = 0, slack_next_attempt_at = null, slack_error = null"
        " where gate_id = $1",
        change.gate_id,
        change.approvers,
        change.deadline,
        change.round,
        list(change.escalated_to) if change.escalated_to is not None else None,
    )
    log.info("gate re-opened", gate_id=change.gate_id, round=change.round)
    return True


async def remind_gate(conn: Connection, change: RemindGate) -> bool:
    """Queue a Slack reminder for a pending gate; False if the gate is not pending here."""
    status = await conn.execute(
        "insert into slack_followups (gate_id, kind, text)"
        " select gate_id, 'reminder', $2 from gates where gate_id = $1 and state = 'pending'",
        change.gate_id,
        "Reminder: this approval is still waiting; its deadline is "
        + change.deadline.strftime("%Y-%m-%d %H:%M:%S UTC")
        + f" (approvers: {', '.join(change.approvers)})",
    )
    return status.endswith(" 1")


async def close_gate(conn: Connection, change: CloseGate) -> bool:
    """Record a pending gate's outcome; False if the gate is unknown or already closed."""
    status = await conn.execute(
        "update gates set state = $2, decided_by = $3, comment = $4, closed_at = $5,"
        " closed_event_id = $6 where gate_id = $1 and state = 'pending'",
        change.gate_id,
        change.state.value,
        change.decided_by,
        change.comment,
        change.closed_at,
        change.closed_event_id,
    )
    return status.endswith(" 1")


async def apply_record(conn: Connection, record: ConsumedRecord) -> str | None:
    """Apply one ``baton.tasks.approvals`` record; return why it is unusable, or None."""
    try:
        envelope = decode_record(record.value, record.headers)
        change = gate_change(envelope)
    except (EnvelopeError, UnusableRecord) as exc:
        return str(exc)
    if isinstance(change, OpenGate):
        if not await open_gate(conn, change):
            log.info("gate already open", gate_id=change.gate_id)
    elif isinstance(change, RemindGate):
        if not await remind_gate(conn, change):
            log.info("reminder for a gate not pending here", gate_id=change.gate_id)
    elif not await close_gate(conn, change):
        # Unknown (opened before the topic's retention) or closed already: nothing to change.
        log.warning("gate closed but not pending here", gate_id=change.gate_id)
    return None


def _gate(row: Row) -> Gate:
    return Gate.model_validate(dict(row))


class GateStore:
    """Reads of the inbox, and the note that a decision was requested."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> Pool:
        return self._pool

    async def get(self, gate_id: str) -> Gate | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"select {GATE_COLUMNS} from gates where gate_id = $1", gate_id
            )
        return _gate(row) if row is not None else None

    async def find(
        self,
        *,
        state: StateFilter | None = None,
        group: str | None = None,
        decidable_by: list[str] | None = None,
        limit: int = 50,
    ) -> list[Gate]:
        """Gates, newest first (decided gates: most recently closed first).

        Args:
            state: only gates in this state; ``decided`` for every closed gate.
            group: only gates naming ``group:<group>`` among their approvers.
            decidable_by: only gates naming one of these principals (see ``principals``).
            limit: at most this many gates.
        """
        decided = state is StateFilter.DECIDED
        order = (
            "closed_at desc nulls last, gate_id desc" if decided else "opened_at desc, gate_id desc"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {GATE_COLUMNS} from gates"
                " where ($1::text is null or state = $1)"
                " and ($2::text is null or approvers @> array[$2::text])"
                " and ($3::text[] is null or approvers && $3::text[])"
                " and (not $5 or state <> 'pending')"
                f" order by {order} limit $4",
                state.value if state is not None and not decided else None,
                f"group:{group}" if group is not None else None,
                decidable_by,
                limit,
                decided,
            )
        return [_gate(row) for row in rows]

    async def detail(self, gate_id: str) -> GateDetail | None:
        """A gate with the decisions asked for on it, oldest first."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"select {GATE_COLUMNS} from gates where gate_id = $1", gate_id
            )
            if row is None:
                return None
            decided = await conn.fetch(
                f"select {_DECISION_COLUMNS} from decisions where gate_id = $1"
                " order by requested_at, approver",
                gate_id,
            )
        return GateDetail.model_validate(
            {**dict(row), "decisions": [DecisionRecord.model_validate(dict(d)) for d in decided]}
        )

    async def decision_of(self, gate_id: str, approver: str) -> DecisionRecord | None:
        """What ``approver`` already asked for on a gate, if anything."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"select {_DECISION_COLUMNS} from decisions where gate_id = $1 and approver = $2",
                gate_id,
                approver,
            )
        return DecisionRecord.model_validate(dict(row)) if row is not None else None


async def reserve_decision(conn: Connection, gate_id: str, record: DecisionRecord) -> bool:
    """Insert a person's decision; False if they already decided this gate.

    Called inside the transaction that stays open while the command is published, so a
    concurrent second decision by the same person waits here and then finds the first.
    """
    status = await conn.execute(
        f"insert into decisions (gate_id, {_DECISION_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7)"
        " on conflict (gate_id, approver) do nothing",
        gate_id,
        record.approver,
        record.decision,
        record.comment,
        record.channel,
        record.command_id,
        record.requested_at,
    )
    return status.endswith(" 1")
