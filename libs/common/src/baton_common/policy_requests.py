"""Policies on one step attempt (ADR 0910): pure, like :mod:`baton_common.policy_rules`.

- :func:`dispatch_decisions`: the scheduler's check of an attempt's rendered input, and
  the :class:`StepGrant` its task carries to the executor.
- :func:`request_decision`: one policy's verdict on a request; the executor applies it
  again to the final request (secrets resolved, an agent's tool arguments filled in).
- :func:`allowed_tools`: an agent's tools, intersected with the grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from pydantic import JsonValue

from baton_common.policy import ActionLimits, Policy, PolicyDecision, StepGrant, globs_match
from baton_common.story import Story

__all__ = [
    "AI_ACTIONS",
    "action_limits",
    "allowed_tools",
    "dispatch_decisions",
    "for_each_decisions",
    "judging",
    "rate_limit_decisions",
    "request_decision",
    "url_target",
]

AI_ACTIONS = ("ai.classify", "ai.extract", "ai.agent")
_TEMPLATE = "{{"


def dispatch_decisions(
    policies: Sequence[Policy], story: Story, name: str, action: str, input: dict[str, JsonValue]
) -> tuple[list[PolicyDecision], StepGrant | None]:
    """The decisions on one attempt's rendered ``input``, and the grant its task carries
    (None when no policy limits this action)."""
    decisions: list[PolicyDecision] = []
    limits: list[ActionLimits] = []
    for policy in judging(policies, story):
        granted = action_limits(policy, story, action)
        if granted is None:
            continue
        limits.append(granted)
        if (decision := request_decision(granted, action, input, subject=name)) is not None:
            decisions.append(decision)
    return decisions, (StepGrant(limits=limits) if limits else None)


def _verdict(
    policy: Policy, rule: str, ok: bool, reason: str, subject: str, facts: dict[str, JsonValue]
) -> PolicyDecision:
    return PolicyDecision.of(
        (policy.id, policy.version), rule, ok, reason, subject=subject, input=facts
    )


def judging(policies: Sequence[Policy], story: Story) -> list[Policy]:
    """The policies whose ``applies_to`` covers ``story``."""
    return [p for p in policies if p.judges(story.owner, story.id)]


def for_each_decisions(
    policies: Sequence[Policy], story: Story, name: str, count: int
) -> list[PolicyDecision]:
    """Whether a for_each's list fits each policy's ``max_for_each``."""
    return [
        _verdict(
            p,
            "actions.max_for_each",
            count <= p.actions.max_for_each,
            f"for_each gave {count} items (limit {p.actions.max_for_each})",
            name,
            {"items": count},
        )
        for p in judging(policies, story)
        if p.actions.max_for_each is not None
    ]


def rate_limit_decisions(
    policies: Sequence[Policy], story: Story, started_last_minute: int
) -> list[PolicyDecision]:
    """Whether one more run of ``story`` fits its runs-per-minute limits."""
    out = []
    for policy in judging(policies, story):
        for limit in policy.actions.rate_limits or []:
            if not limit.covers(story.owner, story.id):
                continue
            ok = started_last_minute < limit.runs_per_minute
            reason = (
                f"{started_last_minute} run(s) of {story.id} started in the last minute "
                f"(limit {limit.runs_per_minute})"
            )
            facts: dict[str, JsonValue] = {"started_last_minute": started_last_minute}
            out.append(_verdict(policy, "actions.rate_limits", ok, reason, story.id, facts))
    return out


def action_limits(policy: Policy, story: Story, action: str) -> ActionLimits | None:
    """What ``policy`` lets an ``action`` step of ``story`` do; None: it does not limit it.

    An ``ai.agent``'s limits include the http rules, since its tools make http calls.
    """
    rules = policy.actions
    hosts = methods = providers = models = tools = None
    if action in ("http", "ai.agent") and rules.http is not None:
        http = [r for r in rules.http if r.covers(story.owner, story.id)]
        hosts = sorted({h for r in http for h in r.hosts})
        methods = sorted({m for r in http for m in r.methods})
    if action in AI_ACTIONS and rules.ai is not None:
        ai = [r for r in rules.ai if r.covers(story.owner, story.id)]
        if not ai or any(r.providers is not None for r in ai):
            providers = sorted({p for r in ai for p in r.providers or []})
        if not ai or any(r.models is not None for r in ai):
            models = sorted({m for r in ai for m in r.models or []})
    if action == "ai.agent" and rules.agent_tools is not None:
        scoped = [r for r in rules.agent_tools if r.covers(story.owner, story.id)]
        tools = sorted({t for r in scoped for t in r.tools})
    if all(v is None for v in (hosts, methods, providers, models, tools)):
        return None
    return ActionLimits(
        policy_id=policy.id,
        policy_version=policy.version,
        hosts=hosts,
        methods=methods,
        providers=providers,
        models=models,
        tools=tools,
    )


def allowed_tools(grant: StepGrant | None, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(kept, withheld)``: an agent's tool names that every policy's ``tools`` allows."""
    kept: list[str] = []
    withheld: list[str] = []
    for name in names:
        ok = grant is None or all(
            limits.tools is None or globs_match(limits.tools, name) for limits in grant.limits
        )
        (kept if ok else withheld).append(name)
    return kept, withheld


def url_target(url: str) -> tuple[str, str] | None:
    """``(host, host:port)`` of ``url``, or None if the host is not known yet (a template
    or secret placeholder in it) or the URL has none."""
    head = url.split(_TEMPLATE, 1)[0]
    if _TEMPLATE in url and "/" not in head.partition("://")[2]:
        return None  # the host itself is (or may end in) a template
    parts = urlsplit(head)
    host = (parts.hostname or "").lower()
    if not host:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return host, f"{host}:{port}"


def request_decision(
    limits: ActionLimits, action: str, input: dict[str, JsonValue], *, subject: str | None = None
) -> PolicyDecision | None:
    """One policy's verdict on a request, or None when it has nothing to judge (it does not
    limit this action, or the host is still a template)."""
    facts: dict[str, JsonValue] = {"action": action}
    policy = f"policy {limits.policy_id} v{limits.policy_version}"

    def verdict(rule: str, ok: bool, reason: str) -> PolicyDecision:
        ref = (limits.policy_id, limits.policy_version)
        return PolicyDecision.of(ref, rule, ok, reason, subject=subject, input=facts)

    if action == "http":
        url = input.get("url")
        method = str(input.get("method") or "GET").upper()
        facts["method"] = method
        if limits.hosts is None or not isinstance(url, str):
            return None
        target = url_target(url)
        if target is None:
            return None
        host, host_port = target
        facts["host"] = host_port
        if not any(globs_match([h], host_port if ":" in h else host) for h in limits.hosts):
            allowed = ", ".join(limits.hosts) or "none"
            reason = f"host {host_port} is not allowed by {policy} (allowed: {allowed})"
            return verdict("actions.http.hosts", False, reason)
        if method not in (limits.methods or []):
            allowed = ", ".join(limits.methods or []) or "none"
            reason = f"method {method} to {host} is not allowed by {policy} (allowed: {allowed})"
            return verdict("actions.http.methods", False, reason)
        return verdict("actions.http", True, f"{method} {host_port} is allowed")
    if action not in AI_ACTIONS or (limits.providers is None and limits.models is None):
        return None
    for key, allowed_list in (("provider", limits.providers), ("model", limits.models)):
        value = input.get(key)
        if allowed_list is None:
            continue
        allowed = ", ".join(allowed_list) or "none"
        if value is None:
            continue  # the executor's configured default: chosen by its operator
        if not isinstance(value, str) or _TEMPLATE in value:
            return None
        facts[key] = value
        if not globs_match(allowed_list, value):
            reason = f"{key} {value} is not allowed by {policy} (allowed: {allowed})"
            return verdict(f"actions.ai.{key}s", False, reason)
    return verdict("actions.ai", True, "provider and model are allowed")
