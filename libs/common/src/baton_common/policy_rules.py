"""Evaluating policies on a story, natively and purely (ADR 0910): no I/O, no clock.

:func:`evaluate_story` judges every rule on a story statically (at publish time and in
``baton policy test``); :func:`start_decisions` judges the run-level rules again when a
run starts, since policies change after publishing. Checks of single step attempts are
in :mod:`baton_common.policy_requests`. Several policies may be in force: each judges on
its own and a single deny wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import JsonValue

from baton_common.policy import (
    Policy,
    PolicyDecision,
    TriggerKind,
    globs_match,
)
from baton_common.policy_requests import AI_ACTIONS, action_limits, judging, request_decision
from baton_common.story import Step, Story

__all__ = ["denials", "evaluate_story", "review_needed", "start_decisions", "trigger_kind"]


def denials(decisions: Iterable[PolicyDecision]) -> list[PolicyDecision]:
    return [d for d in decisions if d.outcome == "deny"]


def _decide(
    policy: Policy,
    rule: str,
    ok: bool,
    reason: str,
    *,
    subject: str | None = None,
    input: dict[str, JsonValue] | None = None,
    review: int | None = None,
) -> PolicyDecision:
    ref = (policy.id, policy.version)
    return PolicyDecision.of(ref, rule, ok, reason, subject=subject, input=input, review=review)


def trigger_kind(story: Story, *, called: bool = False) -> TriggerKind:
    if called:
        return "story"
    return "webhook" if story.trigger.webhook is not None else "schedule"


# --- static: the story as a whole ---------------------------------------------------------


def evaluate_story(
    policies: Sequence[Policy], story: Story, *, publisher_team: str | None = None
) -> list[PolicyDecision]:
    """Every rule of every policy on ``story``, allow and deny, as publishing judges it.

    Args:
        publisher_team: the team publishing (default: the story's owner).
    """
    team = publisher_team if publisher_team is not None else story.owner
    decisions: list[PolicyDecision] = []
    for policy in judging(policies, story):
        decisions += _publish_rules(policy, story, team)
        decisions += _story_rules(policy, story)
        decisions += _rate_note(policy, story)
        decisions += _static_actions(policy, story)
    return decisions


def start_decisions(
    policies: Sequence[Policy], story: Story, *, called: bool = False
) -> list[PolicyDecision]:
    """The rules judged again when a run starts: may it run, by this trigger, as written."""
    decisions: list[PolicyDecision] = []
    for policy in judging(policies, story):
        decisions += _story_rules(policy, story, called=called)
    return decisions


def review_needed(policies: Sequence[Policy], story: Story) -> int:
    """Approvals by others than the author a new version needs before going live (0: none)."""
    needed = [
        p.workflow.change_control.reviewers
        for p in judging(policies, story)
        if p.workflow.change_control is not None and p.workflow.change_control.applies(story.id)
    ]
    return max(needed, default=0)


def _publish_rules(policy: Policy, story: Story, team: str | None) -> list[PolicyDecision]:
    flow = policy.workflow
    out: list[PolicyDecision] = []
    facts: dict[str, JsonValue] = {"story": story.key, "team": team}
    if flow.publish is not None:
        ok = any(s.covers(team, story.id) for s in flow.publish)
        why = "may publish" if ok else "may not publish"
        out.append(
            _decide(policy, "workflow.publish", ok, f"team {team} {why} {story.id}", input=facts)
        )
    control = flow.change_control
    if control is not None:
        if control.applies(story.id):
            reason = (
                f"a new version goes live after {control.reviewers} approval(s) by someone "
                "other than its author"
            )
            out.append(
                _decide(
                    policy,
                    "workflow.change_control",
                    True,
                    reason,
                    input=facts,
                    review=control.reviewers,
                )
            )
        else:
            out.append(
                _decide(
                    policy, "workflow.change_control", True, f"{story.id} is exempt", input=facts
                )
            )
    return out


def _story_rules(policy: Policy, story: Story, *, called: bool = False) -> list[PolicyDecision]:
    flow = policy.workflow
    out: list[PolicyDecision] = []
    if flow.run is not None:
        ok = any(s.covers(story.owner, story.id) for s in flow.run)
        owner = story.owner or "(no owner)"
        why = "may run" if ok else "may not run"
        facts: dict[str, JsonValue] = {"story": story.key, "owner": story.owner}
        out.append(
            _decide(policy, "workflow.run", ok, f"team {owner} {why} {story.id}", input=facts)
        )
    kind = trigger_kind(story, called=called)
    if flow.triggers is not None:
        ok = kind in flow.triggers
        allowed = ", ".join(flow.triggers) or "none"
        reason = (
            f"trigger {kind} is allowed"
            if ok
            else f"trigger {kind} is not allowed (allowed: {allowed})"
        )
        out.append(_decide(policy, "workflow.triggers", ok, reason, input={"trigger": kind}))
    webhook = story.trigger.webhook
    if flow.require_webhook_auth and webhook is not None and not called:
        ok = webhook.signature is not None or webhook.bearer is not None
        reason = (
            "the webhook is authenticated"
            if ok
            else (f"webhook {webhook.path} has no `signature` or `bearer` check")
        )
        out.append(
            _decide(
                policy, "workflow.require_webhook_auth", ok, reason, input={"path": webhook.path}
            )
        )
    if flow.destructive_needs_approval:
        for name, step in story.steps.items():
            if not step.destructive:
                continue
            gates = _approvals_upstream(story, name)
            ok = bool(gates)
            reason = (
                f"gated by approval {', '.join(gates)}"
                if ok
                else "a destructive step needs an approval step among its needs (directly or "
                "further up)"
            )
            out.append(
                _decide(policy, "workflow.destructive_needs_approval", ok, reason, subject=name)
            )
    out += _shape_rules(policy, story)
    return out


def _approvals_upstream(story: Story, name: str) -> list[str]:
    """Approval steps every path to ``name`` passes through: its needs, transitively.

    With ``join: any`` a step may start after any one need, so only approvals on every
    branch count; a conservative reading is the approvals upstream of all needs."""
    seen: set[str] = set()
    stack = list(story.steps[name].needs)
    found: list[str] = []
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        step = story.steps[current]
        if step.approval is not None and step.gate is None:
            found.append(current)
        stack.extend(step.needs)
    if story.steps[name].join == "any" and len(story.steps[name].needs) > 1:
        # every branch must be gated: a gate counts only if upstream of each need
        per_need = [set(_approvals_upstream_of(story, n)) for n in story.steps[name].needs]
        return sorted(set.intersection(*per_need)) if per_need else []
    return sorted(found)


def _approvals_upstream_of(story: Story, name: str) -> list[str]:
    step = story.steps[name]
    own = [name] if step.approval is not None and step.gate is None else []
    return own + _approvals_upstream(story, name)


def _shape_rules(policy: Policy, story: Story) -> list[PolicyDecision]:
    limits = policy.actions
    out: list[PolicyDecision] = []
    if limits.max_fan_out is not None:
        fan = _fan_out(story)
        ok = fan <= limits.max_fan_out
        reason = f"fan-out {fan} (limit {limits.max_fan_out})"
        out.append(_decide(policy, "actions.max_fan_out", ok, reason, input={"fan_out": fan}))
    if limits.max_for_each is not None:
        for name, step in story.steps.items():
            if step.for_each is None:
                continue
            ok = step.max_items <= limits.max_for_each
            reason = f"max_items {step.max_items} (limit {limits.max_for_each})"
            out.append(
                _decide(
                    policy,
                    "actions.max_for_each",
                    ok,
                    reason,
                    subject=name,
                    input={"max_items": step.max_items},
                )
            )
    return out


def _rate_note(policy: Policy, story: Story) -> list[PolicyDecision]:
    """The rate limit a story will run under (judged run by run when runs start)."""
    applied = [r for r in policy.actions.rate_limits or [] if r.covers(story.owner, story.id)]
    if not applied:
        return []
    lowest = min(r.runs_per_minute for r in applied)
    return [_decide(policy, "actions.rate_limits", True, f"at most {lowest} runs a minute")]


def _fan_out(story: Story) -> int:
    """The most steps one step (or the run's start) leads to directly."""
    children: dict[str, int] = {"": 0}
    for step in story.steps.values():
        for parent in step.needs or [""]:
            children[parent] = children.get(parent, 0) + 1
    return max(children.values())


def _static_actions(policy: Policy, story: Story) -> list[PolicyDecision]:
    """Action rules on what the story's text already says (literal hosts, models, tools)."""
    out: list[PolicyDecision] = []
    for name, step in story.steps.items():
        if step.action is None:
            continue
        limits = action_limits(policy, story, step.action)
        if limits is None:
            continue
        decision = request_decision(limits, step.action, dict(step.with_), subject=name)
        rule = "actions.http" if step.action == "http" else "actions.ai"
        if decision is None and (step.action == "http" or step.action in AI_ACTIONS[:2]):
            reason = "decided when the step runs (the host or model is a template)"
            decision = _decide(policy, rule, True, reason, subject=name)
        if decision is not None:
            out.append(decision)
        if step.action == "ai.agent" and limits.tools is not None:
            out.append(_agent_tools(policy, limits.tools, name, step))
    return out


def _agent_tools(policy: Policy, allowed: list[str], name: str, step: Step) -> PolicyDecision:
    tools = step.with_.get("tools")
    names = [
        str(t["name"])
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and "name" in t
    ]
    withheld = [n for n in names if not globs_match(allowed, n)]
    reason = (
        f"tools withheld from the agent: {', '.join(withheld)}"
        if withheld
        else "every declared tool is allowed"
    )
    facts: dict[str, JsonValue] = {"tools": list[JsonValue](names)}
    return _decide(policy, "actions.agent_tools", True, reason, subject=name, input=facts)
