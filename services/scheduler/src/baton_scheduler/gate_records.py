"""The ``baton.tasks.approvals`` records a gate event implies (pure, ADR 0410)."""

from __future__ import annotations

from typing import Literal

from baton_common.events import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReminded,
    ApprovalRequested,
    RunEvent,
)
from baton_common.records import GateClosed, GateOpened, GateReminder
from baton_common.state import RunState

__all__ = ["GateRecord", "gate_records"]

GateRecord = GateOpened | GateClosed | GateReminder


def gate_records(event: RunEvent, after: RunState) -> list[GateRecord]:
    """What the approvals service must learn from ``event`` (already applied in ``after``)."""
    match event:
        case ApprovalRequested():
            return [
                GateOpened(
                    run_id=event.run_id,
                    story_id=after.story_id,
                    story_version=after.story_version,
                    step=event.step,
                    gate_id=event.gate_id,
                    approvers=event.approvers,
                    message=event.message,
                    required=event.required,
                    excluded=event.excluded,
                    context=event.context,
                    deadline=event.deadline,
                    require_comment_on_deny=event.require_comment_on_deny,
                )
            ]
        case ApprovalGranted() | ApprovalDenied():
            outcome: Literal["approved", "denied", "expired"] = "approved"
            if isinstance(event, ApprovalDenied):
                outcome = "expired" if event.channel == "timer" else "denied"
            return [
                GateClosed(
                    run_id=event.run_id,
                    gate_id=event.gate_id,
                    outcome=outcome,
                    approver=event.approver,
                    comment=event.comment,
                )
            ]
        case ApprovalEscalated():
            # the first round ends (its Slack message shows the escalation), then the
            # same gate re-opens to the widened approvers
            return [
                GateClosed(
                    run_id=event.run_id,
                    gate_id=event.gate_id,
                    outcome="escalated",
                    comment=f"escalated to {', '.join(event.escalated_to)}",
                ),
                GateOpened(
                    run_id=event.run_id,
                    story_id=after.story_id,
                    story_version=after.story_version,
                    step=event.step,
                    gate_id=event.gate_id,
                    approvers=event.approvers,
                    deadline=event.deadline,
                    round=2,
                    escalated_to=event.escalated_to,
                ),
            ]
        case ApprovalReminded():
            return [
                GateReminder(
                    run_id=event.run_id,
                    gate_id=event.gate_id,
                    approvers=event.approvers,
                    deadline=event.deadline,
                )
            ]
    return []
