"""Pure mappings: status derivation, run rows, event rows and approval rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton_audit.db import _decode_jsonb
from baton_audit.projection import (
    ApprovalDecision,
    ApprovalEscalation,
    ApprovalRequest,
    AuditStatus,
    RunRow,
    approval_change,
    event_row,
    next_run,
    parse_event,
    run_status,
)
from baton_common.envelope import Envelope
from baton_common.events import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalRequested,
    CommandRejected,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunStarted,
    RunSucceeded,
    StepDispatched,
)
from baton_common.state import replay

from .fakes import STORY, T0, approved_run, chain

STARTED = RunStarted(run_id="r", story_id=STORY, story_version=4, trigger={}, dedup_key="k")


def requested(gate: str) -> ApprovalRequested:
    return ApprovalRequested(run_id="r", step=gate, gate_id=gate, approvers=["group:soc"])


def granted(gate: str) -> ApprovalGranted:
    return ApprovalGranted(run_id="r", step=gate, gate_id=gate, approver="alice")


def fold(envelopes: list[Envelope]) -> RunRow | None:
    row: RunRow | None = None
    for envelope in envelopes:
        event, _ = parse_event(envelope)
        row = next_run(row, "r", envelope, event)
    return row


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], AuditStatus.UNKNOWN),
        ([STARTED], AuditStatus.RUNNING),
        ([STARTED, requested("g1")], AuditStatus.WAITING_APPROVAL),
        ([STARTED, requested("g1"), granted("g1")], AuditStatus.RUNNING),
        (
            [
                STARTED,
                requested("g1"),
                ApprovalDenied(run_id="r", step="g1", gate_id="g1", approver="bob"),
            ],
            AuditStatus.RUNNING,
        ),
        ([STARTED, requested("g1"), requested("g2"), granted("g1")], AuditStatus.WAITING_APPROVAL),
        ([STARTED, RunSucceeded(run_id="r")], AuditStatus.SUCCEEDED),
        ([STARTED, RunFailed(run_id="r", reason="boom")], AuditStatus.FAILED),
        (
            [STARTED, requested("g1"), RunCancelled(run_id="r", reason="x", requested_by="op")],
            AuditStatus.CANCELLED,
        ),
    ],
)
def test_status_follows_the_run_state(events: list[RunEvent], expected: AuditStatus) -> None:
    envelopes = chain("r", events)

    assert run_status(replay(envelopes)) is expected
    row = fold(envelopes)
    assert (row.status if row else AuditStatus.UNKNOWN) is expected


def test_a_run_row_summarises_its_log() -> None:
    log = approved_run("r")

    row = fold(log)

    assert row is not None
    assert row.model_dump(exclude={"state"}) == {
        "run_id": "r",
        "story_id": STORY,
        "story_version": 4,
        "status": AuditStatus.SUCCEEDED,
        "started_at": T0 + timedelta(minutes=1),
        "ended_at": T0 + timedelta(minutes=6),
        "last_seq": 6,
        "correlation_id": "corr-r",
        "dedup_key": "A-1",
        "event_count": 6,
        "updated_at": T0 + timedelta(minutes=6),
    }
    assert row.state == replay(log)


def test_ended_at_is_the_first_terminal_event() -> None:
    log = chain("r", [STARTED, RunFailed(run_id="r", reason="x"), RunSucceeded(run_id="r")])

    row = fold(log)

    assert row is not None
    assert row.ended_at == T0 + timedelta(minutes=2)


def test_events_before_run_started_leave_the_run_unknown() -> None:
    rejected = CommandRejected(
        run_id="r", command_type="baton.approval.decide.v1", command_id="c", reason="no such run"
    )

    row = fold(chain("r", [rejected]))

    assert row is not None
    assert (row.status, row.state, row.story_id, row.event_count) == (
        AuditStatus.UNKNOWN,
        None,
        STORY,
        1,
    )


def test_an_unknown_event_is_counted_but_changes_no_state() -> None:
    [started] = chain("r", [STARTED])
    [future] = chain("r", [STARTED], first_seq=2)
    future = future.model_copy(
        update={"type": "baton.run.paused.v2", "data": {"type": "baton.run.paused.v2"}}
    )

    event, problem = parse_event(future)
    row = next_run(next_run(None, "r", started, parse_event(started)[0]), "r", future, event)

    assert event is None
    assert problem is not None
    assert problem.startswith("baton.run.paused.v2 is not a known run event")
    assert (row.status, row.event_count, row.last_seq) == (AuditStatus.RUNNING, 2, 2)
    assert row.state is not None
    assert row.state.seq == 1


def test_a_payload_for_another_run_is_not_applied() -> None:
    [envelope] = chain("r", [STARTED])
    envelope = envelope.model_copy(update={"subject": "other"})

    event, problem = parse_event(envelope)

    assert event is None
    assert problem == "payload run_id r differs from subject other"


def test_event_row_keeps_every_attribute_of_the_envelope() -> None:
    [envelope] = chain("r", [STARTED])

    row = event_row(envelope, run_id="r", topic="baton.runs", partition=3, offset=17)

    assert (row.kafka_topic, row.kafka_partition, row.kafka_offset) == ("baton.runs", 3, 17)
    assert (row.id, row.seq, row.type, row.time) == ("r-e1", 1, STARTED.type, envelope.time)
    assert (row.causationid, row.correlationid, row.actor) == ("r-cmd1", "corr-r", "scheduler")
    assert (row.storyid, row.storyversion, row.prevhash, row.hash) == (
        STORY,
        4,
        envelope.prevhash,
        envelope.hash,
    )
    assert _decode_jsonb(row.data) == STARTED.model_dump(mode="json")
    # The attributes without a column of their own (the envelope is rebuilt from the row).
    assert (row.specversion, row.datacontenttype, row.traceparent) == (
        envelope.specversion,
        envelope.datacontenttype,
        envelope.traceparent,
    )
    assert row.time_text == envelope.model_dump(mode="json")["time"]


def test_approval_rows_come_from_approval_events() -> None:
    log = approved_run("r")
    changes = [approval_change(e, parse_event(e)[0]) for e in log]

    assert changes[:3] == [None, None, None]
    assert changes[3] == ApprovalRequest(
        gate_id="gate-r",
        run_id="r",
        step="review",
        approvers=["group:secops-oncall"],
        message="contain?",
        requested_at=log[3].time,
        requested_event_id="r-e4",
    )
    assert changes[4] == ApprovalDecision(
        gate_id="gate-r",
        run_id="r",
        step="review",
        decision="approved",
        approver="alice",
        comment="yes",
        channel="api",
        decided_at=log[4].time,
        decided_event_id="r-e5",
    )
    assert changes[5] is None


def test_a_step_dispatch_is_not_an_approval() -> None:
    dispatched = StepDispatched(
        run_id="r", step="s", attempt=1, attempt_id="a", action="http", queue="default", input={}
    )
    [envelope] = chain("r", [dispatched])

    assert approval_change(envelope, dispatched) is None


def test_an_escalation_widens_the_gates_approvers() -> None:
    escalated = ApprovalEscalated(
        run_id="r",
        step="review",
        gate_id="g",
        approvers=["group:leads", "group:oncall"],
        escalated_to=["group:leads"],
    )
    [envelope] = chain("r", [escalated])

    assert approval_change(envelope, escalated) == ApprovalEscalation(
        gate_id="g", approvers=["group:leads", "group:oncall"]
    )
