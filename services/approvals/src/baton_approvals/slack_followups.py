"""Slack messages besides a gate's own (ADR 0410): reminders in the gate's thread before
its deadline, and the update of a message superseded when the gate re-opened to others.

``slack_followups`` is an outbox like the gates table: rows are claimed with
``for update skip locked``, a failed call is retried with backoff, and a crash before
the row is marked done repeats the call (at least once).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from baton_approvals.db import Connection, Pool, Row, column
from baton_approvals.slack_api import SlackApiError, SlackClient

__all__ = ["send_followups"]

log = structlog.get_logger(__name__)

_BATCH: Final = 20
_WAIT_FOR_POST: Final = timedelta(seconds=2)


def _text_block(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def send_followups(pool: Pool, slack: SlackClient) -> int:
    """One pass over due follow-ups; returns how many were handled."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "select f.id, f.gate_id, f.kind, f.channel, f.ts, f.text, f.attempts,"
            " g.state, g.slack_channel, g.slack_ts, g.slack_error from slack_followups f"
            " join gates g using (gate_id) where f.done_at is null"
            " and (f.next_attempt_at is null or f.next_attempt_at <= now())"
            " order by f.id limit $1 for update of f skip locked",
            _BATCH,
        )
        for row in rows:
            await _send(conn, slack, row)
    return len(rows)


async def _send(conn: Connection, slack: SlackClient, data: Row) -> None:
    followup = column(data, "id", int)
    text = column(data, "text", str)
    try:
        if data["kind"] == "superseded":
            channel, ts = column(data, "channel", str), column(data, "ts", str)
            await slack.update_message(
                channel, ts, text, [_text_block(f":arrow_double_up: {text}")]
            )
        elif data["state"] != "pending":
            await _done(conn, followup, "the gate is no longer pending")
            return
        elif data["slack_ts"] is None:
            if data["slack_error"] is not None:  # the gate has nowhere to be posted
                await _done(conn, followup, f"gate not on Slack: {data['slack_error']}")
                return
            await _later(conn, followup, _WAIT_FOR_POST, None)  # not posted yet
            return
        else:
            channel, ts = column(data, "slack_channel", str), column(data, "slack_ts", str)
            await slack.post_message(
                channel, text, [_text_block(f":alarm_clock: {text}")], thread_ts=ts
            )
        log.info("slack follow-up sent", gate_id=data["gate_id"], kind=data["kind"])
        await _done(conn, followup, None)
    except SlackApiError as exc:
        attempts = column(data, "attempts", int)
        log.warning("slack follow-up failed", gate_id=data["gate_id"], error=str(exc))
        await _later(conn, followup, timedelta(seconds=2 ** min(attempts, 9)), str(exc))


async def _done(conn: Connection, followup: int, error: str | None) -> None:
    await conn.execute(
        "update slack_followups set done_at = now(), error = $2 where id = $1", followup, error
    )


async def _later(conn: Connection, followup: int, wait: timedelta, error: str | None) -> None:
    await conn.execute(
        "update slack_followups set attempts = attempts + $3, next_attempt_at = $2, error = $4"
        " where id = $1",
        followup,
        datetime.now(UTC) + wait,
        1 if error is not None else 0,
        error,
    )
