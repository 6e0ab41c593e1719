"""Records on the topics around the event log: stories, intake, tasks and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from baton_common.policy import PolicyDecision, StepGrant
from baton_common.story import Story

__all__ = [
    "TASK_ADAPTER",
    "DeadLetter",
    "EventReceived",
    "GateClosed",
    "GateOpened",
    "GateReminder",
    "ScheduleCursor",
    "StepTask",
    "StoryApproved",
    "StoryPublished",
    "Task",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoryPublished(_Record):
    """One immutable story version on ``baton.stories`` (key ``id:version``)."""

    type: Literal["baton.story.published.v1"] = "baton.story.published.v1"
    story: Story
    source: str = Field(description="the YAML text as published")
    author: str | None = Field(default=None, description="who published it")
    draft: bool = Field(
        default=False,
        description="change control: not live until approved by someone other than the author "
        "(a StoryApproved record)",
    )
    reviewers: int = Field(default=0, description="approvals a draft needs to go live")
    policy: list[PolicyDecision] | None = Field(
        default=None, description="what the policies in force decided when it was published"
    )


class StoryApproved(_Record):
    """Change control: someone other than the author approved a draft story version
    (``baton.stories``, key ``id:version:approved:<approver>``)."""

    type: Literal["baton.story.approved.v1"] = "baton.story.approved.v1"
    story_id: str
    version: int
    approver: str
    author: str | None = None
    comment: str | None = None


class EventReceived(_Record):
    """A raw inbound event on ``baton.ingest``, accepted before any processing."""

    type: Literal["baton.ingest.received.v1"] = "baton.ingest.received.v1"
    path: str | None = Field(default=None, description="webhook path, for HTTP intake")
    body: JsonValue


class StepTask(_Record):
    """Work for an executor pool on ``baton.tasks.<queue>``."""

    type: Literal["baton.task.step.v1"] = "baton.task.step.v1"
    run_id: str
    story_id: str
    story_version: int
    step: str
    attempt: int
    attempt_id: str
    action: str
    input: dict[str, JsonValue]
    policy: StepGrant | None = Field(
        default=None, description="limits the executor enforces on the final request (ADR 0910)"
    )


class GateOpened(_Record):
    """An approval gate waits for a decision (``baton.tasks.approvals``)."""

    type: Literal["baton.task.gate-opened.v1"] = "baton.task.gate-opened.v1"
    run_id: str
    story_id: str
    story_version: int
    step: str
    gate_id: str
    approvers: list[str]
    message: str | None = None
    required: int = Field(default=1, description="distinct approvals that close the gate")
    excluded: list[str] = Field(
        default_factory=list, description="people four-eyes refuses as approvers"
    )
    context: dict[str, JsonValue] | None = None
    deadline: datetime | None = None
    require_comment_on_deny: bool = False
    round: int = Field(
        default=1, description="2 when the gate re-opens after an escalation (same gate_id)"
    )
    escalated_to: list[str] | None = None


class GateReminder(_Record):
    """Remind a gate's approvers that its deadline is near (``baton.tasks.approvals``)."""

    type: Literal["baton.task.gate-reminder.v1"] = "baton.task.gate-reminder.v1"
    run_id: str
    gate_id: str
    approvers: list[str]
    deadline: datetime


class GateClosed(_Record):
    """An approval gate was decided or its run ended (``baton.tasks.approvals``)."""

    type: Literal["baton.task.gate-closed.v1"] = "baton.task.gate-closed.v1"
    run_id: str
    gate_id: str
    outcome: Literal["approved", "denied", "cancelled", "expired", "escalated"] = Field(
        description="expired: denied by its deadline; escalated: re-opened to others "
        "(a GateOpened with round 2 follows)"
    )
    approver: str | None = None
    comment: str | None = None


Task = Annotated[StepTask | GateOpened | GateClosed | GateReminder, Field(discriminator="type")]
TASK_ADAPTER: TypeAdapter[Task] = TypeAdapter(Task)


class DeadLetter(_Record):
    """A record no service could parse, kept with the reason on ``baton.dlq``."""

    type: Literal["baton.dlq.record.v1"] = "baton.dlq.record.v1"
    topic: str
    partition: int
    offset: int
    consumer: str
    reason: str
    key: str | None = None
    value: str | None = Field(default=None, description="the value, decoded as UTF-8 with escapes")
    headers: dict[str, str] = Field(default_factory=dict)
    value_truncated: bool = Field(
        default=False,
        description="true when only the first part of a large value is copied here; the whole "
        "record stays at topic/partition/offset for the source topic's retention",
    )
    value_bytes: int | None = Field(default=None, description="the original value's size")
    value_sha256: str | None = Field(default=None, description="hex SHA-256 of the whole value")


class ScheduleCursor(_Record):
    """Ticks of a scheduled story handled up to ``handled_through`` (``baton.schedules``,
    compacted, key = story id); ingest replicas resume from it after downtime."""

    type: Literal["baton.schedule.cursor.v1"] = "baton.schedule.cursor.v1"
    story_id: str
    handled_through: datetime
