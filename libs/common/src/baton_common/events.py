"""Run events: past-tense facts on ``baton.runs``, written only by the scheduler.

Contracts only grow: add optional fields; a breaking change is a new ``…v2`` type,
because old records live in the log forever.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from baton_common.commands import ErrorKind

__all__ = [
    "EVENT_ADAPTER",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRequested",
    "CommandRejected",
    "RunCancelled",
    "RunDeduplicated",
    "RunEvent",
    "RunFailed",
    "RunStarted",
    "RunSucceeded",
    "StepDispatched",
    "StepFailed",
    "StepSkipped",
    "StepSucceeded",
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


class ApprovalGranted(_Event):
    type: Literal["baton.approval.granted.v1"] = "baton.approval.granted.v1"
    step: str
    gate_id: str
    approver: str
    comment: str | None = None
    channel: str = "api"


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


RunEvent = Annotated[
    RunStarted
    | RunDeduplicated
    | StepDispatched
    | StepSucceeded
    | StepFailed
    | StepSkipped
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalDenied
    | RunSucceeded
    | RunFailed
    | RunCancelled
    | CommandRejected,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)
