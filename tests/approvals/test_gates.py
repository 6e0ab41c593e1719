"""Pure mappings: gate records to inbox changes, decisions to commands."""

from __future__ import annotations

import pytest

from baton_approvals.gates import (
    CloseGate,
    Gate,
    GateState,
    OpenGate,
    UnusableRecord,
    decision_envelope,
    gate_change,
)
from baton_common.auth import Identity
from baton_common.commands import COMMAND_ADAPTER, DecideApproval
from baton_common.kafka import to_envelope
from baton_common.records import StepTask

from .fakes import T0, closed, opened


def test_gate_opened_becomes_a_pending_gate_with_its_provenance() -> None:
    change = gate_change(opened("g1", run_id="r1", event_id="evt-7"))

    assert change == OpenGate(
        gate_id="g1",
        run_id="r1",
        story_id="phishing-triage",
        story_version=4,
        step="review",
        approvers=["group:secops-oncall", "carol"],
        message="contain the host?",
        opened_at=T0,
        opened_event_id="evt-7",
        correlation_id="corr-r1",
    )


@pytest.mark.parametrize("outcome", ["approved", "denied", "cancelled"])
def test_gate_closed_becomes_its_outcome(outcome: str) -> None:
    change = gate_change(closed("g1", outcome=outcome, approver=None))

    assert isinstance(change, CloseGate)
    assert change.state is GateState(outcome)
    assert (change.decided_by, change.comment, change.closed_at) == (None, "ok", T0)


def test_a_step_task_is_not_a_gate_record() -> None:
    task = StepTask(
        run_id="r1",
        story_id="s",
        story_version=1,
        step="x",
        attempt=1,
        attempt_id="a",
        action="http",
        input={},
    )
    envelope = to_envelope(task, id="e", source="baton/scheduler", time=T0, subject="r1")

    with pytest.raises(UnusableRecord, match="does not belong on the approvals topic"):
        gate_change(envelope)


def test_an_invalid_payload_says_what_is_wrong() -> None:
    envelope = opened().model_copy(update={"data": {"type": "baton.task.gate-opened.v1"}})

    with pytest.raises(UnusableRecord, match="not a gate record"):
        gate_change(envelope)


def test_a_decision_becomes_decide_approval_with_the_approver_identity() -> None:
    gate = Gate(
        gate_id="g1",
        run_id="r1",
        story_id="phishing-triage",
        story_version=4,
        step="review",
        approvers=["group:secops-oncall"],
        message=None,
        state=GateState.PENDING,
        opened_at=T0,
        opened_event_id="evt-7",
        correlation_id="corr-r1",
        decided_by=None,
        comment=None,
        closed_at=None,
        decision_requested=None,
        decision_requested_by=None,
        decision_requested_at=None,
        decision_command_id=None,
    )
    alice = Identity(user="alice", groups=["secops-oncall"])

    envelope = decision_envelope(gate, alice, "deny", "false positive", command_id="c1", time=T0)

    assert envelope.model_dump(exclude={"data"}) == {
        "id": "c1",
        "type": "baton.approval.decide.v1",
        "source": "baton/approvals",
        "subject": "r1",
        "time": T0,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "storyid": "phishing-triage",
        "storyversion": 4,
        "causationid": "evt-7",
        "correlationid": "corr-r1",
        "actor": "alice",
        "seq": None,
        "traceparent": None,
        "prevhash": None,
        "hash": None,
    }
    assert COMMAND_ADAPTER.validate_python(envelope.data) == DecideApproval(
        run_id="r1",
        gate_id="g1",
        decision="deny",
        approver="alice",
        approver_groups=["secops-oncall"],
        comment="false positive",
        channel="api",
    )
