"""Posts each gate to Slack, and updates the message when the gate closes.

The gates table is the outbox: a gate whose ``slack_shows`` differs from its state has
work to do. Rows are claimed with ``for update skip locked``, so replicas share the work
and a message is posted once; a failed call is retried with backoff, and a crash before
the row is updated repeats the call (at least once, like every side effect here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from baton_approvals.db import Connection, Pool
from baton_approvals.gates import Gate, GateState
from baton_approvals.slack_api import SlackApiError, SlackClient
from baton_approvals.slack_followups import send_followups
from baton_approvals.slack_messages import gate_message
from baton_approvals.store import GATE_COLUMNS

__all__ = ["SlackNotifier", "channel_for"]

log = structlog.get_logger(__name__)

_BATCH: Final = 20
_MAX_BACKOFF: Final = timedelta(minutes=10)


def channel_for(
    approvers: Sequence[str], channels: dict[str, str], default: str | None
) -> str | None:
    """The channel of the first approver entry that has one, else ``default``."""
    for approver in approvers:
        if approver in channels:
            return channels[approver]
    return default


class SlackNotifier:
    """The loop that keeps every gate's Slack message in step with the gate."""

    def __init__(
        self,
        *,
        pool: Pool,
        slack: SlackClient,
        channels: dict[str, str],
        default_channel: str | None,
        poll_seconds: float,
    ) -> None:
        self._pool = pool
        self._slack = slack
        self._channels = channels
        self._default = default_channel
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="slack-notifier")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def run(self) -> None:
        while True:
            try:
                done = await self.once()
            except Exception:
                log.exception("slack notifier pass failed")
                done = 0
            if done < _BATCH:
                await asyncio.sleep(self._poll)

    async def once(self) -> int:
        """One pass over due gates and follow-ups; returns how many were handled."""
        return await self._gates() + await send_followups(self._pool, self._slack)

    async def _gates(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"select {GATE_COLUMNS}, slack_attempts from gates"
                " where slack_shows is distinct from state"
                " and (slack_next_attempt_at is null or slack_next_attempt_at <= now())"
                " order by opened_at limit $1 for update skip locked",
                _BATCH,
            )
            for row in rows:
                attempts = row["slack_attempts"]
                await self._sync(conn, Gate.model_validate(dict(row)), int(str(attempts)))
        return len(rows)

    async def _sync(self, conn: Connection, gate: Gate, attempts: int) -> None:
        try:
            if gate.slack_ts is not None and gate.slack_channel is not None:
                text, blocks = gate_message(gate)
                await self._slack.update_message(gate.slack_channel, gate.slack_ts, text, blocks)
                log.info("slack message updated", gate_id=gate.gate_id, state=gate.state.value)
                await self._shown(conn, gate)
                return
            channel = channel_for(gate.approvers, self._channels, self._default)
            if gate.state is not GateState.PENDING or channel is None:
                # Closed before it was posted, or nowhere to post: nothing to show.
                await self._shown(conn, gate, error=None if channel else "no Slack channel")
                return
            text, blocks = gate_message(gate)
            posted_channel, ts = await self._slack.post_message(channel, text, blocks)
            log.info("slack message posted", gate_id=gate.gate_id, channel=posted_channel, ts=ts)
            await conn.execute(
                "update gates set slack_channel = $2, slack_ts = $3 where gate_id = $1",
                gate.gate_id,
                posted_channel,
                ts,
            )
            await self._shown(conn, gate)
        except SlackApiError as exc:
            delay = min(timedelta(seconds=2 ** min(attempts, 10)), _MAX_BACKOFF)
            log.warning(
                "slack call failed", gate_id=gate.gate_id, error=str(exc), attempts=attempts
            )
            await conn.execute(
                "update gates set slack_attempts = slack_attempts + 1,"
                " slack_next_attempt_at = $2, slack_error = $3 where gate_id = $1",
                gate.gate_id,
                datetime.now(UTC) + delay,
                str(exc),
            )

    async def _shown(self, conn: Connection, gate: Gate, *, error: str | None = None) -> None:
        await conn.execute(
            "update gates set slack_shows = $2, slack_attempts = 0, slack_next_attempt_at = null,"
            " slack_error = $3 where gate_id = $1",
            gate.gate_id,
            gate.state.value,
            error,
        )
