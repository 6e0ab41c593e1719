"""Governance in the audit store (ADR 0910, 0911): change-control approvals projected
from ``baton.stories``, and queries over the policy decisions recorded in ``baton.runs``.

Policy decisions need no table of their own: they are ``PolicyEvaluated`` and
``PolicyDenied`` events, stored in ``events`` like every event (an index serves the
queries below), so a rebuild reproduces them with the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, JsonValue

from baton_audit.db import Connection, Pool
from baton_common.envelope import Envelope
from baton_common.kafka import ConsumedRecord
from baton_common.records import StoryApproved

__all__ = [
    "APPROVED_TYPE",
    "DecisionFilter",
    "PolicyDecisionRow",
    "StoryApprovalRow",
    "approval_row",
    "policy_decisions",
    "story_approvals",
    "write_approvals",
]

APPROVED_TYPE: Final = StoryApproved.model_fields["type"].default
_TYPES: Final = {"allow": "baton.policy.evaluated.v1", "deny": "baton.policy.denied.v1"}
_APPROVAL: Final = (
    "insert into story_approvals (story_id, version, approver, author, comment, approved_at,"
    " event_id, kafka_topic, kafka_partition, kafka_offset)"
    " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " on conflict (story_id, version, approver) do nothing"
)


def approval_row(envelope: Envelope, record: ConsumedRecord) -> tuple[object, ...]:
    """The ``story_approvals`` row of a StoryApproved record.

    Raises:
        pydantic.ValidationError: if the record is not a valid StoryApproved.
    """
    approval = StoryApproved.model_validate(envelope.data)
    return (
        approval.story_id,
        approval.version,
        approval.approver,
        approval.author,
        approval.comment,
        envelope.time,
        envelope.id,
        record.topic,
        record.partition,
        record.offset,
    )


async def write_approvals(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    if rows:
        await conn.executemany(_APPROVAL, rows)


class StoryApprovalRow(BaseModel):
    story_id: str
    version: int
    approver: str
    author: str | None
    comment: str | None
    approved_at: datetime
    event_id: str


async def story_approvals(pool: Pool, story_id: str | None = None) -> list[StoryApprovalRow]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select story_id, version, approver, author, comment, approved_at, event_id"
            " from story_approvals where $1::text is null or story_id = $1"
            " order by story_id, version, approved_at",
            story_id,
        )
    return [StoryApprovalRow.model_validate(dict(r)) for r in rows]


class DecisionFilter(BaseModel):
    policy_id: str | None = None
    policy_version: int | None = None
    outcome: Literal["allow", "deny"] | None = None
    story_id: str | None = None
    rule: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


class PolicyDecisionRow(BaseModel):
    """One recorded decision: when, on which run and step, by which policy, and why."""

    time: datetime
    run_id: str
    story_id: str | None
    story_version: int | None
    stage: str
    step: str | None
    outcome: str
    policy_id: str
    policy_version: int
    rule: str
    reason: str
    input: dict[str, JsonValue]
    event_id: str


async def policy_decisions(pool: Pool, where: DecisionFilter) -> list[PolicyDecisionRow]:
    """Recorded policy decisions, newest first."""
    types = [_TYPES[where.outcome]] if where.outcome else list(_TYPES.values())
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select time, run_id, storyid, storyversion, type, id, data from events"
            " where type = any($1::text[])"
            " and ($2::text is null or data -> 'decision' ->> 'policy_id' = $2)"
            " and ($3::int is null or (data -> 'decision' ->> 'policy_version')::int = $3)"
            " and ($4::text is null or storyid = $4)"
            " and ($5::text is null or data -> 'decision' ->> 'rule' = $5)"
            " and ($6::timestamptz is null or time >= $6)"
            " and ($7::timestamptz is null or time < $7)"
            " order by time desc, kafka_offset desc limit $8",
            types,
            where.policy_id,
            where.policy_version,
            where.story_id,
            where.rule,
            where.since,
            where.until,
            where.limit,
        )
    found = []
    for row in rows:
        data = row["data"]
        decision = data.get("decision") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(decision, dict):
            continue
        fields = ("outcome", "policy_id", "policy_version", "rule", "reason")
        found.append(
            PolicyDecisionRow.model_validate(
                {
                    "time": row["time"],
                    "run_id": row["run_id"],
                    "story_id": row["storyid"],
                    "story_version": row["storyversion"],
                    "stage": data.get("stage"),
                    "step": data.get("step"),
                    **{k: decision.get(k) for k in fields},
                    "input": decision.get("input") or {},
                    "event_id": row["id"],
                }
            )
        )
    return found
