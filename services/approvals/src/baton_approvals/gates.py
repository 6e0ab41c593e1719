"""Approval gates: the inbox row, and the pure mappings from records and to commands."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from baton_common.auth import Identity
from baton_common.commands import DecideApproval
from baton_common.envelope import Envelope
from baton_common.kafka import to_envelope
from baton_common.records import TASK_ADAPTER, GateClosed, GateOpened, GateReminder, StepTask

__all__ = [
    "SOURCE",
    "CloseGate",
    "Decision",
    "DecisionRecord",
    "Gate",
    "GateDetail",
    "GateState",
    "OpenGate",
    "RemindGate",
    "StateFilter",
    "UnusableRecord",
    "decision_envelope",
    "gate_change",
]

SOURCE: Final = "baton/approvals"

Decision = Literal["approve", "deny"]


class GateState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # denied by its deadline
    ESCALATED = "escalated"  # a round ended by escalation; the gate re-opens (round 2)


class StateFilter(StrEnum):
    """A list filter: one gate state, or ``decided`` for every closed gate."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DECIDED = "decided"


class Gate(BaseModel):
    """One approval gate as the inbox holds it."""

    model_config = ConfigDict(frozen=True)

    gate_id: str
    run_id: str
    story_id: str
    story_version: int
    step: str
    approvers: list[str]
    message: str | None
    state: GateState
    opened_at: datetime
    opened_event_id: str
    correlation_id: str | None
    decided_by: str | None
    comment: str | None
    closed_at: datetime | None
    decision_requested: Decision | None
    decision_requested_by: str | None
    decision_requested_at: datetime | None
    decision_command_id: str | None
    slack_channel: str | None = None
    slack_ts: str | None = None
    required: int = 1
    excluded: list[str] = []
    context: dict[str, JsonValue] | None = None
    deadline: datetime | None = None
    require_comment_on_deny: bool = False
    round: int = 1
    escalated_to: list[str] | None = None
    traceparent: str | None = Field(default=None, exclude=True)

    @field_validator("context", mode="before")
    @classmethod
    def _json_text(cls, value: object) -> object:
        # asyncpg hands jsonb over as text
        return json.loads(value) if isinstance(value, str) else value


class DecisionRecord(BaseModel):
    """A decision a person asked for through this service (the scheduler judges it)."""

    model_config = ConfigDict(frozen=True)

    approver: str
    decision: Decision
    comment: str | None
    channel: str
    command_id: str
    requested_at: datetime


class GateDetail(Gate):
    """A gate with every decision asked for on it, oldest first."""

    decisions: list[DecisionRecord] = []


@dataclass(frozen=True, slots=True)
class OpenGate:
    """Insert a pending gate (``GateOpened``)."""

    gate_id: str
    run_id: str
    story_id: str
    story_version: int
    step: str
    approvers: list[str]
    message: str | None
    opened_at: datetime
    opened_event_id: str
    correlation_id: str | None
    required: int = 1
    excluded: tuple[str, ...] = ()
    context: dict[str, JsonValue] | None = None
    deadline: datetime | None = None
    require_comment_on_deny: bool = False
    round: int = 1
    escalated_to: tuple[str, ...] | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class RemindGate:
    """Remind a pending gate's approvers of its deadline (``GateReminder``)."""

    gate_id: str
    approvers: list[str]
    deadline: datetime


@dataclass(frozen=True, slots=True)
class CloseGate:
    """Record a pending gate's outcome (``GateClosed``)."""

    gate_id: str
    run_id: str
    state: GateState
    decided_by: str | None
    comment: str | None
    closed_at: datetime
    closed_event_id: str


class UnusableRecord(Exception):
    """A record on the approvals topic that is not a gate record; the message says why."""


def gate_change(envelope: Envelope) -> OpenGate | CloseGate | RemindGate:
    """What a ``baton.tasks.approvals`` envelope changes in the inbox.

    Raises:
        UnusableRecord: if the payload is not a valid ``GateOpened`` or ``GateClosed``.
    """
    try:
        task = TASK_ADAPTER.validate_python(envelope.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "data"
        raise UnusableRecord(f"not a gate record: {where}: {err['msg']}") from exc
    match task:
        case GateOpened():
            return OpenGate(
                gate_id=task.gate_id,
                run_id=task.run_id,
                story_id=task.story_id,
                story_version=task.story_version,
                step=task.step,
                approvers=list(task.approvers),
                message=task.message,
                opened_at=envelope.time,
                opened_event_id=envelope.id,
                correlation_id=envelope.correlationid,
                required=task.required,
                excluded=tuple(task.excluded),
                context=task.context,
                deadline=task.deadline,
                require_comment_on_deny=task.require_comment_on_deny,
                round=task.round,
                escalated_to=tuple(task.escalated_to) if task.escalated_to is not None else None,
                traceparent=envelope.traceparent,
            )
        case GateReminder():
            return RemindGate(
                gate_id=task.gate_id, approvers=list(task.approvers), deadline=task.deadline
            )
        case GateClosed():
            if task.outcome not in GateState.__members__.values():
                # The contract may grow outcomes this inbox does not know yet: a dead
                # letter with the reason, never a projection stuck on a ValueError.
                raise UnusableRecord(f"unknown gate outcome {task.outcome!r}")
            return CloseGate(
                gate_id=task.gate_id,
                run_id=task.run_id,
                state=GateState(task.outcome),
                decided_by=task.approver,
                comment=task.comment,
                closed_at=envelope.time,
                closed_event_id=envelope.id,
            )
        case StepTask():
            raise UnusableRecord(f"{task.type} does not belong on the approvals topic")


def decision_envelope(
    gate: Gate,
    identity: Identity,
    decision: Decision,
    comment: str | None,
    *,
    command_id: str,
    time: datetime,
    channel: str = "api",
    refused: str | None = None,
) -> Envelope:
    """The ``DecideApproval`` command a person's decision becomes, caused by the gate's opening.

    ``refused`` is the reason this service refused it: the scheduler then only records it.
    """
    command = DecideApproval(
        run_id=gate.run_id,
        gate_id=gate.gate_id,
        decision=decision,
        approver=identity.user,
        approver_groups=list(identity.groups),
        comment=comment,
        channel=channel,
        refused=refused,
    )
    return to_envelope(
        command,
        id=command_id,
        source=SOURCE,
        time=time,
        subject=gate.run_id,
        actor=identity.user,
        storyid=gate.story_id,
        storyversion=gate.story_version,
        causationid=gate.opened_event_id,
        correlationid=gate.correlation_id,
        traceparent=gate.traceparent,
    )
