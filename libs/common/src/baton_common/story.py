"""Stories: YAML documents describing a DAG of steps, validated by pydantic.

A story version is immutable once published; runs keep the version they started
with. Validation errors name the step and the reason so an author can fix them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from baton_common.actions import ActionKind
from baton_common.durations import Duration
from baton_common.triggers import Trigger

__all__ = [
    "ApprovalGate",
    "Delay",
    "GateCondition",
    "HandlerAction",
    "Input",
    "RetryPolicy",
    "Step",
    "Story",
    "StoryError",
    "SubStory",
    "parse_story",
]

_NAME = r"^[a-z][a-z0-9_]*$"
_STORY_ID = r"^[a-z][a-z0-9-]*$"


class StoryError(ValueError):
    """A story document is invalid; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Model):
    """How a failed attempt is retried: exponential backoff with deterministic jitter.

    The wait before attempt ``n + 1`` is ``min(max_backoff, backoff * multiplier**(n-1))``
    shortened by up to ``jitter`` of itself, the fraction derived from the attempt id
    (so a replay computes the same wait). Only ``retryable`` errors retry, and when
    ``retry_on`` is set only those error types (``FailStep.error_type``; a timeout is
    ``step_timeout``).
    """

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 1
    backoff: Duration = Field(default=timedelta(seconds=1), description="the first wait")
    multiplier: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    max_backoff: Duration = Field(default=timedelta(minutes=5), description="the cap")
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    retry_on: list[str] | None = Field(
        default=None, description="error types that retry; None: every retryable error"
    )

    @model_validator(mode="after")
    def _sane(self) -> RetryPolicy:
        if self.backoff < timedelta(0) or self.max_backoff < self.backoff:
            raise ValueError("retry: need 0 <= backoff <= max_backoff")
        return self


class Delay(_Model):
    """A durable wait: ``for: 10m``, or ``until:`` a template giving an ISO-8601 time."""

    for_: Duration | None = Field(default=None, alias="for")
    until: str | None = Field(
        default=None, description="template rendering to a timestamp with a UTC offset"
    )

    @model_validator(mode="after")
    def _one(self) -> Delay:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("a delay has exactly one of `for` or `until`")
        if self.for_ is not None and self.for_ < timedelta(0):
            raise ValueError("a delay's `for` is not negative")
        return self


class ApprovalGate(_Model):
    """A durable human gate (ADR 0410): who may decide, how many, and what happens in time."""

    approvers: Annotated[list[str], Field(min_length=1)] = Field(
        description="user names, or groups as `group:<name>`"
    )
    message: str | None = Field(default=None, description="template shown to approvers")
    timeout: Duration | None = Field(default=None, description="the gate's deadline")
    on_timeout: Literal["deny", "approve", "escalate"] = "deny"
    required: Annotated[int, Field(ge=1, le=20)] = Field(
        default=1, description="distinct people who must approve (a quorum)"
    )
    four_eyes: bool = Field(
        default=True,
        description="the run's initiator (and, for a gate guarding a destructive step, the "
        "story's owner) cannot approve",
    )
    escalate_to: list[str] | None = Field(
        default=None, description="with `on_timeout: escalate`: who the gate re-opens to"
    )
    escalation_timeout: Duration | None = Field(
        default=None, description="the escalated gate's deadline (default: `timeout`)"
    )
    remind_before: Duration | None = Field(
        default=None, description="remind the approvers this long before the deadline"
    )
    require_comment_on_deny: bool = Field(default=False, description="a deny needs a comment")
    context: dict[str, JsonValue] | None = Field(
        default=None,
        description="templates over `event`/`steps`/`run` shown with the gate "
        "(e.g. the AI verdict, confidence and reasoning)",
    )

    @model_validator(mode="after")
    def _sane(self) -> ApprovalGate:
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("`on_timeout: escalate` needs `escalate_to`")
        if self.on_timeout == "escalate" and self.timeout is None:
            raise ValueError("`on_timeout: escalate` needs a `timeout`")
        if self.escalate_to and self.on_timeout != "escalate":
            raise ValueError("`escalate_to` is for `on_timeout: escalate`")
        if self.remind_before is not None and self.timeout is None:
            raise ValueError("`remind_before` needs a `timeout`")
        if self.remind_before is not None and self.remind_before <= timedelta(0):
            raise ValueError("`remind_before` is positive")
        return self


class GateCondition(_Model):
    """A confidence gate: the approval opens only when ``when`` holds, else the step passes."""

    when: str = Field(description="condition over `event`, `steps`, `run`")


class SubStory(_Model):
    """A step that runs another story and waits for its outcome; ``with`` are its inputs."""

    id: Annotated[str, Field(pattern=_STORY_ID, max_length=100)]
    version: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="None: the newest version when the step starts"
    )


class Input(_Model):
    """An input a story declares for callers (``story`` steps); callers' inputs are checked."""

    required: bool = True
    description: str | None = None


class HandlerAction(_Model):
    """An action run when a run closes: a step's ``compensate`` or the story's ``on_failure``.

    Templates see the run as it is then: ``steps.<name>.output`` of the step being undone.
    """

    action: ActionKind
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    queue: Annotated[str, Field(pattern=_NAME)] = "default"
    retry: RetryPolicy = RetryPolicy(max_attempts=3)


class Step(_Model):
    needs: list[str] = Field(default_factory=list)
    join: Literal["all", "any"] = Field(
        default="all",
        description="all: start when every need succeeded; any: when one did",
    )
    if_: str | None = Field(default=None, alias="if")
    action: ActionKind | None = Field(default=None, description="an action kind the executor knows")
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    approval: ApprovalGate | None = None
    gate: GateCondition | None = Field(
        default=None, description="on an approval step: open the gate only when `when` holds"
    )
    retry: RetryPolicy = RetryPolicy()
    destructive: bool = False
    queue: Annotated[str, Field(pattern=_NAME)] = "default"
    timeout: Duration | None = Field(
        default=None, description="an attempt not answered in time fails as `step_timeout`"
    )
    delay: Delay | None = None
    compensate: HandlerAction | None = Field(
        default=None, description="undoes this step when the run fails or is cancelled"
    )
    story: SubStory | None = Field(default=None, description="call another story")
    for_each: str | None = Field(
        default=None,
        description="expression giving a list: one child per item (`item`, `index`), "
        "then the step's output is the children's outputs in order",
    )
    max_items: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=100, description="a longer for_each list fails the step"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in (self.action, self.approval, self.delay, self.story) if k is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a step has exactly one of `action` or `approval` (or `delay`, `story`)"
            )
        if self.timeout is not None and self.action is None and self.story is None:
            raise ValueError("`timeout` is for action steps (an approval has `approval.timeout`)")
        if self.delay is not None and self.with_:
            raise ValueError("a delay step takes no `with`")
        if self.compensate is not None and self.action is None:
            raise ValueError("`compensate` is for action steps")
        if self.for_each is not None and self.action is None:
            raise ValueError("`for_each` is for action steps")
        if self.approval is not None and self.with_:
            raise ValueError("an approval step takes no `with`")
        if self.gate is not None and self.approval is None:
            raise ValueError("`gate` is for approval steps")
        return self


class Story(_Model):
    id: Annotated[str, Field(pattern=_STORY_ID, max_length=100)]
    version: Annotated[int, Field(ge=1)]
    owner: str | None = None
    description: str | None = None
    trigger: Trigger
    steps: Annotated[dict[str, Step], Field(min_length=1)]
    timeout: Duration | None = Field(default=None, description="the run fails if not done by then")
    inputs: dict[str, Input] | None = Field(
        default=None, description="what callers must pass; None: a story no step calls"
    )
    on_failure: HandlerAction | None = Field(
        default=None, description="runs once when the run fails, after the compensations"
    )

    @model_validator(mode="after")
    def _valid_graph(self) -> Story:
        for name, step in self.steps.items():
            if not re.match(_NAME, name):
                raise ValueError(f"step {name!r}: names are lowercase letters, digits and _")
            for need in step.needs:
                if need not in self.steps:
                    raise ValueError(f"step {name!r}: needs unknown step {need!r}")
        try:
            tuple(TopologicalSorter({n: s.needs for n, s in self.steps.items()}).static_order())
        except CycleError as exc:
            raise ValueError(f"steps form a cycle: {' -> '.join(exc.args[1])}") from exc
        return self

    @property
    def key(self) -> str:
        """The Kafka key of this version on ``baton.stories``."""
        return f"{self.id}:{self.version}"


def parse_story(text: str) -> Story:
    """Parse and validate a story YAML document.

    Raises:
        StoryError: naming the line (for YAML errors) or the field path and reason.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        raise StoryError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(document, dict):
        raise StoryError("document: a story is a YAML mapping")
    try:
        return Story.model_validate(document)
    except ValidationError as exc:
        raise StoryError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "story"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
