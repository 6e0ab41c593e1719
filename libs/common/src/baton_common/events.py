"""Run events: past-tense facts on ``baton.runs``, written only by the scheduler.

Contracts only grow: add optional fields; a breaking change is a new ``…v2`` type,
because old records live in the log forever.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from baton_common.commands import ErrorKind, TimerKind
from baton_common.policy import PolicyDecision, StepGrant

__all__ = [
    "EVENT_ADAPTER",
    "ApprovalDenied",
    "ApprovalEscalated",
    "ApprovalGranted",
    "ApprovalNotNeeded",
    "ApprovalReminded",
    "ApprovalRequested",
    "ApprovalVoteRecorded",
    "CommandRejected",
    "CompensationExtended",
    "CompensationStarted",
    "DedupSlotAdvanced",
    "PolicyDenied",
    "PolicyEvaluated",
    "PolicyStage",
    "RunCancelled",
    "RunDeduplicated",
    "RunEvent",
    "RunFailed",
    "RunStarted",
    "RunSucceeded",
    "StepDispatched",
    "StepExploded",
    "StepFailed",
    "StepSkipped",
    "StepSucceeded",
    "TimerFired",
    "TimerScheduled",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str


class RunStarted(_Event):
    type: Literal["baton.run.started.v1"] = "baton.run.started.v1"
    story_id: str
    story_version: int
    trigger: dict[str, JsonValue]
    dedup_key: str | None = None
    dedup_until: str | None = Field(default=None, description="ISO time the dedup window ends")
    ingest_id: str | None = None
    dedup_slot: str | None = Field(
        default=None,
        description="for a run started after an earlier run's dedup window: that slot's run id",
    )
    parent_run_id: str | None = Field(default=None, description="the run whose step called")
    parent_step: str | None = None
    parent_attempt_id: str | None = None
    initiator: str | None = Field(
        default=None, description="who started the run (the StartRun's actor), for four-eyes"
    )


class RunDeduplicated(_Event):
    """A second StartRun for the same dedup key arrived inside the window."""

    type: Literal["baton.run.deduplicated.v1"] = "baton.run.deduplicated.v1"
    dedup_key: str
    duplicate_command_id: str
    ingest_id: str | None = None


class StepDispatched(_Event):
    type: Literal["baton.step.dispatched.v1"] = "baton.step.dispatched.v1"
    step: str
    attempt: int
    attempt_id: str
    action: str
    queue: str
    input: dict[str, JsonValue]
    child_run_id: str | None = Field(
        default=None, description="for a `story` step: the sub-story run this attempt starts"
    )
    child_story_id: str | None = None
    child_story_version: int | None = None
    policy: StepGrant | None = Field(
        default=None, description="what the policies in force let this attempt do (ADR 0910)"
    )


class StepExploded(_Event):
    """A ``for_each`` step's list: one child step ``<step>[<index>]`` per item follows."""

    type: Literal["baton.step.exploded.v1"] = "baton.step.exploded.v1"
    step: str
    items: list[JsonValue]


class StepSucceeded(_Event):
    type: Literal["baton.step.succeeded.v1"] = "baton.step.succeeded.v1"
    step: str
    attempt: int
    attempt_id: str
    output: JsonValue = None


class StepFailed(_Event):
    type: Literal["baton.step.failed.v1"] = "baton.step.failed.v1"
    step: str
    attempt: int
    attempt_id: str
    error_kind: ErrorKind
    error_type: str
    message: str
    will_retry: bool
    http_status: int | None = Field(
        default=None, description="the HTTP status the executor reported, if any"
    )
    retry_after_seconds: float | None = Field(
        default=None, description="the other side's Retry-After, honoured by the retry timer"
    )


class StepSkipped(_Event):
    type: Literal["baton.step.skipped.v1"] = "baton.step.skipped.v1"
    step: str
    reason: str


class ApprovalRequested(_Event):
    type: Literal["baton.approval.requested.v1"] = "baton.approval.requested.v1"
    step: str
    gate_id: str
    approvers: list[str]
    message: str | None = None
    required: int = Field(default=1, description="distinct approvals that close the gate")
    excluded: list[str] = Field(
        default_factory=list, description="people four-eyes refuses as approvers"
    )
    context: dict[str, JsonValue] | None = Field(
        default=None, description="the gate's rendered `context`"
    )
    deadline: datetime | None = None
    require_comment_on_deny: bool = False


class ApprovalGranted(_Event):
    type: Literal["baton.approval.granted.v1"] = "baton.approval.granted.v1"
    step: str
    gate_id: str
    approver: str
    comment: str | None = None
    channel: str = "api"
    approvals: list[str] | None = Field(
        default=None, description="for a quorum: everyone whose approval counted, in order"
    )


class ApprovalVoteRecorded(_Event):
    """An approval towards a gate's quorum; the gate stays open until ``required`` is met."""

    type: Literal["baton.approval.vote-recorded.v1"] = "baton.approval.vote-recorded.v1"
    step: str
    gate_id: str
    approver: str
    comment: str | None = None
    channel: str = "api"
    approvals: int = Field(description="approvals so far, this one included")
    required: int


class ApprovalNotNeeded(_Event):
    """A confidence gate's ``when`` did not hold: the step passes without asking anyone."""

    type: Literal["baton.approval.not-needed.v1"] = "baton.approval.not-needed.v1"
    step: str
    gate_id: str
    reason: str


class ApprovalEscalated(_Event):
    """A gate's deadline passed with ``on_timeout: escalate``: it re-opens to ``escalate_to``
    (the first approvers stay eligible; approvals already recorded still count)."""

    type: Literal["baton.approval.escalated.v1"] = "baton.approval.escalated.v1"
    step: str
    gate_id: str
    approvers: list[str] = Field(description="who may decide now")
    escalated_to: list[str]
    deadline: datetime | None = None


class ApprovalReminded(_Event):
    """``remind_before`` the deadline of a still open gate: its approvers are reminded."""

    type: Literal["baton.approval.reminded.v1"] = "baton.approval.reminded.v1"
    step: str
    gate_id: str
    approvers: list[str]
    deadline: datetime


class ApprovalDenied(_Event):
    type: Literal["baton.approval.denied.v1"] = "baton.approval.denied.v1"
    step: str
    gate_id: str
    approver: str
    comment: str | None = None
    channel: str = "api"


class RunSucceeded(_Event):
    type: Literal["baton.run.succeeded.v1"] = "baton.run.succeeded.v1"


class RunFailed(_Event):
    type: Literal["baton.run.failed.v1"] = "baton.run.failed.v1"
    reason: str
    step: str | None = None


class RunCancelled(_Event):
    type: Literal["baton.run.cancelled.v1"] = "baton.run.cancelled.v1"
    reason: str
    requested_by: str


class CommandRejected(_Event):
    """A command was invalid for the run's state; nothing else changed."""

    type: Literal["baton.command.rejected.v1"] = "baton.command.rejected.v1"
    command_type: str
    command_id: str
    reason: str


class TimerScheduled(_Event):
    """The run will need a ``FireTimer`` at ``fire_at`` (a retry, timeout or delay)."""

    type: Literal["baton.timer.scheduled.v1"] = "baton.timer.scheduled.v1"
    timer_id: str
    kind: TimerKind
    step: str | None = None
    attempt: int | None = None
    fire_at: datetime


class TimerFired(_Event):
    """A timer came due; the events after it in the same command are its consequences."""

    type: Literal["baton.timer.fired.v1"] = "baton.timer.fired.v1"
    timer_id: str
    kind: TimerKind
    step: str | None = None


class DedupSlotAdvanced(_Event):
    """On the dedup slot's run (the first run of a key): a later trigger with the same
    dedup key arrived after the window and started ``current`` (ADR 0100)."""

    type: Literal["baton.dedup.advanced.v1"] = "baton.dedup.advanced.v1"
    dedup_key: str
    generation: int
    current: str


class CompensationStarted(_Event):
    """The run is closing: its ``handlers`` (compensations of completed steps, newest
    first, then ``on_failure``) run one at a time before the run fails or is cancelled."""

    type: Literal["baton.compensation.started.v1"] = "baton.compensation.started.v1"
    outcome: Literal["failed", "cancelled"]
    reason: str
    handlers: list[str]
    step: str | None = Field(default=None, description="the step whose failure closes the run")
    requested_by: str | None = Field(default=None, description="who cancelled the run")


class CompensationExtended(_Event):
    """A step that was in flight when the run began closing succeeded afterwards: its
    compensation joins the handlers (``handlers`` is the whole new order)."""

    type: Literal["baton.compensation.extended.v1"] = "baton.compensation.extended.v1"
    step: str = Field(description="the step that succeeded while the run was closing")
    handlers: list[str]


PolicyStage = Literal["start", "dispatch", "for_each", "execute"]
"""Where a run-time policy decision was taken: starting the run, dispatching a step,
exploding a for_each, or in the executor on the final request."""


class PolicyEvaluated(_Event):
    """A policy allowed something a run was about to do (ADR 0910)."""

    type: Literal["baton.policy.evaluated.v1"] = "baton.policy.evaluated.v1"
    stage: PolicyStage
    step: str | None = None
    decision: PolicyDecision


class PolicyDenied(_Event):
    """A policy refused something a run was about to do; the step (or the run's start)
    fails, never retried (ADR 0910)."""

    type: Literal["baton.policy.denied.v1"] = "baton.policy.denied.v1"
    stage: PolicyStage
    step: str | None = None
    decision: PolicyDecision


RunEvent = Annotated[
    RunStarted
    | RunDeduplicated
    | StepDispatched
    | StepExploded
    | StepSucceeded
    | StepFailed
    | StepSkipped
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalDenied
    | ApprovalVoteRecorded
    | ApprovalNotNeeded
    | ApprovalEscalated
    | ApprovalReminded
    | RunSucceeded
    | RunFailed
    | RunCancelled
    | CommandRejected
    | TimerScheduled
    | TimerFired
    | DedupSlotAdvanced
    | CompensationStarted
    | CompensationExtended
    | PolicyEvaluated
    | PolicyDenied,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)
