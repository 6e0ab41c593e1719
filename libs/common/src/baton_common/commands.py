"""Commands: imperative requests to change a run, appended to ``baton.commands``.

Any service may append a command; only the scheduler decides what it means and
records the outcome as events on ``baton.runs`` (DESIGN.md rule 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from baton_common.policy import PolicyDecision

__all__ = [
    "COMMAND_ADAPTER",
    "CancelRun",
    "Command",
    "CompleteStep",
    "DecideApproval",
    "ErrorKind",
    "FailStep",
    "FireTimer",
    "StartRun",
    "TimerKind",
]

ErrorKind = Literal["retryable", "permanent"]
TimerKind = Literal[
    "retry", "step_timeout", "approval_timeout", "delay", "run_timeout", "approval_reminder"
]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str


class StartRun(_Command):
    """Start a run of a story for a triggering event."""

    type: Literal["baton.run.start.v1"] = "baton.run.start.v1"
    story_id: str
    story_version: int | None = Field(default=None, description="None: the newest version")
    trigger: dict[str, JsonValue] = Field(description="the triggering event, as `event`")
    dedup_key: str | None = None
    dedup_window_seconds: int | None = None
    ingest_id: str | None = Field(default=None, description="id of the baton.ingest record")
    parent_run_id: str | None = Field(default=None, description="set when a story step calls")
    parent_step: str | None = None
    parent_attempt_id: str | None = None
    initiator: str | None = Field(
        default=None,
        description="who started the run, when not the envelope's actor (a sub-story inherits "
        "its caller's); four-eyes gates refuse their approval",
    )


class CompleteStep(_Command):
    """An executor finished a step attempt successfully."""

    type: Literal["baton.step.complete.v1"] = "baton.step.complete.v1"
    step: str
    attempt_id: str
    output: JsonValue = None


class FailStep(_Command):
    """An executor's step attempt failed; ``error_kind`` says whether a retry may help."""

    type: Literal["baton.step.fail.v1"] = "baton.step.fail.v1"
    step: str
    attempt_id: str
    error_kind: ErrorKind
    error_type: str = Field(description="the error's class, e.g. HTTPStatusError")
    message: str
    attempt: int | None = Field(default=None, description="the attempt number that failed")
    http_status: int | None = Field(
        default=None, description="the HTTP status that caused the failure, if any"
    )
    retry_after_seconds: float | None = Field(
        default=None,
        ge=0,
        description="the other side asked not to retry sooner (HTTP Retry-After)",
    )
    policy: PolicyDecision | None = Field(
        default=None,
        description="the executor refused the final request by policy: the scheduler records "
        "a PolicyDenied and fails the step without retrying (ADR 0910)",
    )


class DecideApproval(_Command):
    """A person approved or denied an approval gate."""

    type: Literal["baton.approval.decide.v1"] = "baton.approval.decide.v1"
    gate_id: str
    decision: Literal["approve", "deny"]
    approver: str
    approver_groups: list[str] = Field(default_factory=list)
    comment: str | None = None
    channel: str = "api"
    refused: str | None = Field(
        default=None,
        description=(
            "set when the channel refused the decision (answered 409/403) and says why;"
            " the scheduler records it as CommandRejected and never applies it"
        ),
    )


class CancelRun(_Command):
    """An operator asks to stop a run."""

    type: Literal["baton.run.cancel.v1"] = "baton.run.cancel.v1"
    reason: str
    requested_by: str
    compensate: bool = Field(
        default=False, description="undo completed steps (their `compensate`) before stopping"
    )


class FireTimer(_Command):
    """The scheduler's timer loop says a run's timer is due (DESIGN.md rule 2: time enters
    only as commands). The envelope id is derived from ``timer_id``; the decider ignores a
    timer the run no longer holds, so a timer fires at most once."""

    type: Literal["baton.timer.fire.v1"] = "baton.timer.fire.v1"
    timer_id: str
    kind: TimerKind
    step: str | None = None
    attempt: int | None = None
    fire_at: datetime


Command = Annotated[
    StartRun | CompleteStep | FailStep | DecideApproval | CancelRun | FireTimer,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
