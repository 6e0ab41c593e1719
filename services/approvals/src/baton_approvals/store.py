"""The approval inbox in PostgreSQL: the projection's writes and the API's reads."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import structlog

from baton_approvals.db import Connection, Pool, Row
from baton_approvals.gates import (
    CloseGate,
    Decision,
    Gate,
    GateState,
    OpenGate,
    UnusableRecord,
    gate_change,
)
from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord

__all__ = ["GateStore", "apply_record", "close_gate", "open_gate"]

log = structlog.get_logger(__name__)

_COLUMNS: Final = (
    "gate_id, run_id, story_id, story_version, step, approvers, message, state, opened_at,"
    " opened_event_id, correlation_id, decided_by, comment, closed_at, decision_requested,"
    " decision_requested_by, decision_requested_at, decision_command_id"
)


async def open_gate(conn: Connection, change: OpenGate) -> bool:
    """Insert a pending gate; False if the gate is already known."""
    status = await conn.execute(
        "insert into gates (gate_id, run_id, story_id, story_version, step, approvers, message,"
        " state, opened_at, opened_event_id, correlation_id)"
        " values ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10)"
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

    async def get(self, gate_id: str) -> Gate | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(f"select {_COLUMNS} from gates where gate_id = $1", gate_id)
        return _gate(row) if row is not None else None

    async def find(
        self,
        *,
        state: GateState | None = None,
        group: str | None = None,
        decidable_by: list[str] | None = None,
        limit: int = 50,
    ) -> list[Gate]:
        """Gates, newest first.

        Args:
            state: only gates in this state.
            group: only gates naming ``group:<group>`` among their approvers.
            decidable_by: only gates naming one of these principals (see ``principals``).
            limit: at most this many gates.
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"select {_COLUMNS} from gates"
                " where ($1::text is null or state = $1)"
                " and ($2::text is null or approvers @> array[$2::text])"
                " and ($3::text[] is null or approvers && $3::text[])"
                " order by opened_at desc, gate_id desc limit $4",
                state.value if state is not None else None,
                f"group:{group}" if group is not None else None,
                decidable_by,
                limit,
            )
        return [_gate(row) for row in rows]

    async def note_decision_requested(
        self,
        gate_id: str,
        *,
        decision: Decision,
        requested_by: str,
        requested_at: datetime,
        command_id: str,
    ) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "update gates set decision_requested = $2, decision_requested_by = $3,"
                " decision_requested_at = $4, decision_command_id = $5 where gate_id = $1",
                gate_id,
                decision,
                requested_by,
                requested_at,
                command_id,
            )
