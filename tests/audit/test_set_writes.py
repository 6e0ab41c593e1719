"""A batch's rows written set-based (``set_writes``, ADR 0540) are the rows of its events
applied one at a time, in log order, even when several events of a batch write one row.

The log repeats every key a batch can repeat: an attempt dispatched twice and finished
twice (the first result stays), a gate requested twice, escalated twice and decided twice
(a denial after a grant), plus outputs that are JSON lists and strings. The same records
are applied as one batch and one by one; every projected row must be the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from baton_audit.admin import checksum
from baton_audit.db import Pool
from baton_audit.store import AuditStore
from baton_common.envelope import Envelope
from baton_common.events import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalRequested,
    RunEvent,
    RunStarted,
    StepDispatched,
    StepFailed,
    StepSucceeded,
)

from .conftest import PoolFactory
from .fakes import STORY, TOPIC, chain, projector_on, records

pytestmark = pytest.mark.integration


def dispatched_event(run_id: str, attempt_id: str = "a1", queue: str = "q") -> StepDispatched:
    return StepDispatched(
        run_id=run_id,
        step="fetch",
        attempt=1,
        attempt_id=attempt_id,
        action="http",
        queue=queue,
        input={"url": queue},
    )


def repeated_keys(run_id: str) -> list[Envelope]:
    def dispatched(attempt_id: str, queue: str) -> StepDispatched:
        return dispatched_event(run_id, attempt_id, queue)

    def requested(approvers: list[str], message: str) -> ApprovalRequested:
        return ApprovalRequested(
            run_id=run_id, step="ok", gate_id=f"g-{run_id}", approvers=approvers, message=message
        )

    def escalated(approvers: list[str]) -> ApprovalEscalated:
        return ApprovalEscalated(
            run_id=run_id,
            step="ok",
            gate_id=f"g-{run_id}",
            approvers=approvers,
            escalated_to=approvers[-1:],
        )

    events: list[RunEvent] = [
        RunStarted(run_id=run_id, story_id=STORY, story_version=4, trigger={}),
        dispatched("a1", "first"),
        dispatched("a1", "second"),
        StepSucceeded(run_id=run_id, step="fetch", attempt=1, attempt_id="a1", output=[1, [2]]),
        StepFailed(
            run_id=run_id,
            step="fetch",
            attempt=1,
            attempt_id="a1",
            error_kind="permanent",
            error_type="Late",
            message="ignored: the first result stays",
            will_retry=False,
        ),
        dispatched("a2", "other"),
        StepSucceeded(run_id=run_id, step="fetch", attempt=1, attempt_id="a2", output="text"),
        requested(["u:a", "u:b"], "first"),
        requested(["u:c"], "second"),
        escalated(["u:c", "u:z", "u:d"]),
        escalated(["u:c", "u:d", "u:e", "u:f"]),
        ApprovalGranted(run_id=run_id, step="ok", gate_id=f"g-{run_id}", approver="alice"),
        ApprovalDenied(run_id=run_id, step="ok", gate_id=f"g-{run_id}", approver="bob"),
    ]
    return chain(run_id, events)


async def test_a_batch_writes_what_its_events_one_by_one_write(new_pool: PoolFactory) -> None:
    log = records(repeated_keys("r1") + repeated_keys("r2"))

    one_by_one = await new_pool()
    projector = projector_on(one_by_one)
    for record in log:
        await projector.apply_batch(TOPIC, 0, [record])
    whole = await new_pool()
    await projector_on(whole).apply_batch(TOPIC, 0, log)

    expected = await checksum(one_by_one)
    assert expected[1]["step_attempts"] == 4
    assert expected[1]["approvals"] == 2
    assert await checksum(whole) == expected
    await _the_rows_say_what_the_log_did(whole)


async def _the_rows_say_what_the_log_did(pool: Pool) -> None:
    store = AuditStore(pool)
    first, second = await store.attempts("r1")
    assert (first.attempt_id, first.queue, first.outcome, first.output) == (
        "a1",
        "second",
        "succeeded",
        [1, [2]],
    )
    assert (second.attempt_id, second.output) == ("a2", "text")
    [gate] = await store.approvals("r1")
    assert gate.approvers == ["u:c", "u:d", "u:e", "u:f"]
    assert (gate.message, gate.decision, gate.approver) == ("second", "denied", "bob")


async def test_times_in_other_offsets_are_the_same_instants_as_the_events(pool: Pool) -> None:
    # The set-based rows carry times as text (set_writes._time), COPY carries the events'
    # as binary: a time given with another offset and microseconds is the same instant.
    start = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    log = chain("r1", [RunStarted(run_id="r1", story_id=STORY, story_version=4, trigger={})])
    log += chain("r1", [dispatched_event("r1")], start=start, first_seq=2)
    await projector_on(pool).apply_batch(TOPIC, 0, records(log))

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "select r.started_at, r.updated_at, a.dispatched_at,"
            " (select min(time) from events) as first, (select max(time) from events) as last"
            " from runs r join step_attempts a using (run_id)"
        )
    assert row is not None
    assert (row["started_at"], row["updated_at"]) == (row["first"], row["last"])
    assert row["dispatched_at"] == row["last"] == start + timedelta(minutes=2)
