"""Stories: YAML documents describing a DAG of steps, validated by pydantic.

A story version is immutable once published; runs keep the version they started
with. Validation errors name the step and the reason so an author can fix them.
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from baton_common.actions import ActionKind
from baton_common.triggers import Trigger

__all__ = [
    "ApprovalGate",
    "RetryPolicy",
    "Step",
    "Story",
    "StoryError",
    "parse_story",
]

_NAME = r"^[a-z][a-z0-9_]*$"
_STORY_ID = r"^[a-z][a-z0-9-]*$"


class StoryError(ValueError):
    """A story document is invalid; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Model):
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 1


class ApprovalGate(_Model):
    approvers: Annotated[list[str], Field(min_length=1)] = Field(
        description="user names, or groups as `group:<name>`"
    )
    message: str | None = Field(default=None, description="template shown to approvers")


class Step(_Model):
    needs: list[str] = Field(default_factory=list)
    if_: str | None = Field(default=None, alias="if")
    action: ActionKind | None = Field(default=None, description="an action kind the executor knows")
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    approval: ApprovalGate | None = None
    retry: RetryPolicy = RetryPolicy()
    destructive: bool = False
    queue: Annotated[str, Field(pattern=_NAME)] = "default"

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.action is None) == (self.approval is None):
            raise ValueError("a step has exactly one of `action` or `approval`")
        if self.approval is not None and self.with_:
            raise ValueError("an approval step takes no `with`")
        return self


class Story(_Model):
    id: Annotated[str, Field(pattern=_STORY_ID, max_length=100)]
    version: Annotated[int, Field(ge=1)]
    owner: str | None = None
    description: str | None = None
    trigger: Trigger
    steps: Annotated[dict[str, Step], Field(min_length=1)]

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
