"""Policy as code: versioned YAML documents saying what stories and their steps may do.

A policy is published like a story (an immutable ``id:version`` on ``baton.policies``) and
evaluated natively (ADR 0910): statically when a story is published or tested
(:mod:`baton_common.policy_rules`), and dynamically when the scheduler starts a run or
dispatches a step, and when the executor sends the final request. Every rule is a list
of *scoped* entries; an entry applies to a story when the story's owner team and id match
its ``teams`` and ``stories`` globs. A section left out restricts nothing; a section
given but with no entry for a story denies (say ``[]`` to forbid outright). A policy
judges only the stories in its ``applies_to`` scope (default: all).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

__all__ = [
    "ActionLimits",
    "ActionPolicy",
    "AgentToolRule",
    "AiRule",
    "ChangeControl",
    "HttpRule",
    "Policy",
    "PolicyDecision",
    "PolicyError",
    "PolicyPublished",
    "RateLimit",
    "Scope",
    "StepGrant",
    "TriggerKind",
    "WorkflowPolicy",
    "globs_match",
    "load_policies",
    "parse_policy",
]

_POLICY_ID = r"^[a-z][a-z0-9-]*$"
TriggerKind = Literal["webhook", "schedule", "story"]
"""How a run starts: a webhook (or Kafka-native intake), a schedule, or another story."""


class PolicyError(ValueError):
    """A policy document is invalid; the message names the field and the reason."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def globs_match(patterns: list[str], value: str | None) -> bool:
    """Whether ``value`` matches one of the shell-style ``patterns`` (``*`` matches all,
    also a missing value)."""
    return any(p == "*" or (value is not None and fnmatch.fnmatchcase(value, p)) for p in patterns)


class Scope(_Model):
    """Which stories an entry is about: their owner team and their id (globs)."""

    teams: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["*"], description="owner teams (globs); `*` also matches none"
    )
    stories: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["*"], description="story ids (globs)"
    )

    def covers(self, team: str | None, story_id: str) -> bool:
        return globs_match(self.teams, team) and globs_match(self.stories, story_id)


class ChangeControl(_Model):
    """A story version matching ``stories`` (and not ``except``) is published as a draft
    and goes live only once someone other than its author approved it."""

    stories: Annotated[list[str], Field(min_length=1)] = Field(default_factory=lambda: ["*"])
    except_: list[str] = Field(default_factory=list, alias="except")
    reviewers: Annotated[int, Field(ge=1, le=5)] = Field(
        default=1, description="distinct approvals needed, none of them by the author"
    )

    def applies(self, story_id: str) -> bool:
        return globs_match(self.stories, story_id) and not (
            self.except_ and globs_match(self.except_, story_id)
        )


class WorkflowPolicy(_Model):
    publish: list[Scope] | None = Field(
        default=None, description="which teams may publish which stories (the publisher's team)"
    )
    run: list[Scope] | None = Field(
        default=None, description="which stories may run, by their owner team"
    )
    triggers: list[TriggerKind] | None = Field(default=None, description="allowed trigger kinds")
    require_webhook_auth: bool = Field(
        default=False, description="a webhook trigger needs a `signature` or `bearer` check"
    )
    destructive_needs_approval: bool = Field(
        default=True, description="a `destructive: true` step needs an approval step upstream"
    )
    change_control: ChangeControl | None = None


class HttpRule(Scope):
    hosts: list[str] = Field(description="host names or IPs (globs), optionally `host:port`")
    methods: list[str] = Field(default_factory=lambda: ["GET", "HEAD"])

    @model_validator(mode="after")
    def _upper(self) -> HttpRule:
        if any(m != m.upper() for m in self.methods):
            raise ValueError("methods are upper case (GET, POST, …)")
        return self


class AiRule(Scope):
    providers: list[str] | None = Field(default=None, description="None: any provider")
    models: list[str] | None = Field(default=None, description="None: any model (globs)")


class AgentToolRule(Scope):
    tools: list[str] = Field(description="tool names an ai.agent may call (globs)")


class RateLimit(Scope):
    runs_per_minute: Annotated[int, Field(ge=1)]


class ActionPolicy(_Model):
    http: list[HttpRule] | None = None
    ai: list[AiRule] | None = None
    agent_tools: list[AgentToolRule] | None = None
    max_fan_out: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="most steps started by one step (or at the run's start)"
    )
    max_for_each: Annotated[int | None, Field(ge=1)] = Field(
        default=None, description="most items a for_each may explode into"
    )
    rate_limits: list[RateLimit] | None = None


class Policy(_Model):
    id: Annotated[str, Field(pattern=_POLICY_ID, max_length=100)]
    version: Annotated[int, Field(ge=1)]
    description: str | None = None
    applies_to: Scope = Field(
        default_factory=Scope, description="the stories this policy judges (default: all)"
    )
    workflow: WorkflowPolicy = WorkflowPolicy()
    actions: ActionPolicy = ActionPolicy()

    @property
    def key(self) -> str:
        return f"{self.id}:{self.version}"

    def judges(self, team: str | None, story_id: str) -> bool:
        """Whether a story (its owner team and id) is within ``applies_to``."""
        return self.applies_to.covers(team, story_id)


class PolicyDecision(_Model):
    """One rule's verdict on one input: what ``baton policy test`` prints and what the
    ``PolicyEvaluated`` / ``PolicyDenied`` events carry."""

    outcome: Literal["allow", "deny"]
    policy_id: str
    policy_version: int
    rule: str = Field(description="the rule judged, e.g. `actions.http.hosts`")
    reason: str
    subject: str | None = Field(default=None, description="the step judged, if any")
    input: dict[str, JsonValue] = Field(default_factory=dict, description="what was judged")
    review: int | None = Field(
        default=None, description="change control: approvals needed from others than the author"
    )

    @classmethod
    def of(
        cls,
        policy: tuple[str, int],
        rule: str,
        ok: bool,
        reason: str,
        *,
        subject: str | None = None,
        input: dict[str, JsonValue] | None = None,
        review: int | None = None,
    ) -> PolicyDecision:
        """The decision of ``policy`` (id, version) on ``rule``: allow if ``ok``."""
        return cls(
            outcome="allow" if ok else "deny",
            policy_id=policy[0],
            policy_version=policy[1],
            rule=rule,
            reason=reason,
            subject=subject,
            input=input or {},
            review=review,
        )


class ActionLimits(_Model):
    """One policy's limits on a dispatched attempt, for the executor's final check."""

    policy_id: str
    policy_version: int
    hosts: list[str] | None = None
    methods: list[str] | None = None
    providers: list[str] | None = None
    models: list[str] | None = None
    tools: list[str] | None = None


class StepGrant(_Model):
    """What the policies in force let one attempt do, carried by its task (ADR 0910)."""

    limits: list[ActionLimits]


class PolicyPublished(_Model):
    """One immutable policy version on ``baton.policies`` (key ``id:version``)."""

    type: Literal["baton.policy.published.v1"] = "baton.policy.published.v1"
    policy: Policy
    source: str = Field(description="the YAML text as published")
    author: str | None = None


def parse_policy(text: str, *, where: str = "policy") -> Policy:
    """Parse and validate a policy YAML document.

    Raises:
        PolicyError: naming the line (for YAML errors) or each field path and reason.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else "document"
        raise PolicyError(
            f"{where}: {at}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from exc
    if not isinstance(document, dict):
        raise PolicyError(f"{where}: a policy is a YAML mapping")
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "policy"
            problems.append(f"{path}: {err['msg'].removeprefix('Value error, ')}")
        raise PolicyError(f"{where}: " + "; ".join(problems)) from exc


def load_policies(directory: Path) -> list[Policy]:
    """Every ``*.yaml``/``*.yml`` policy in ``directory``, newest version per id.

    Raises:
        PolicyError: for the first invalid file, naming it.
    """
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    newest: dict[str, Policy] = {}
    for path in files:
        policy = parse_policy(path.read_text(), where=str(path))
        if policy.id not in newest or newest[policy.id].version < policy.version:
            newest[policy.id] = policy
    return list(newest.values())
