"""Policy checks inside the decider (ADR 0910): pure, over the policies passed in.

Every decision becomes an event on the run: ``PolicyEvaluated`` when a rule allowed,
``PolicyDenied`` when it refused; a refusal fails the run's start or the step, never
retried. The policies a decision read are the ones in force when its command was
decided; replaying the log never re-evaluates them, it reads these events.
"""

from __future__ import annotations

from pydantic import JsonValue

from baton_common.commands import FailStep
from baton_common.events import PolicyDenied, PolicyEvaluated, PolicyStage, RunFailed
from baton_common.policy import PolicyDecision, StepGrant
from baton_common.policy_requests import (
    dispatch_decisions,
    for_each_decisions,
    rate_limit_decisions,
)
from baton_common.policy_rules import denials, start_decisions
from baton_common.story import Story
from baton_scheduler.progress import Builder, fail_step

__all__ = ["check_dispatch", "check_for_each", "check_start", "record_executor_denial"]


def _record(
    run: Builder, stage: PolicyStage, step: str | None, decisions: list[PolicyDecision]
) -> list[PolicyDecision]:
    """Emit one event per decision; return the denials."""
    run_id = run.run.run_id
    for decision in decisions:
        if decision.outcome == "deny":
            run.emit(PolicyDenied(run_id=run_id, stage=stage, step=step, decision=decision))
        else:
            run.emit(PolicyEvaluated(run_id=run_id, stage=stage, step=step, decision=decision))
    return denials(decisions)


def check_start(run: Builder, story: Story, *, called: bool, started_last_minute: int) -> bool:
    """Judge a just started run; on a denial it fails at once. Returns whether it may go on."""
    decisions = start_decisions(run.policies, story, called=called)
    decisions += rate_limit_decisions(run.policies, story, started_last_minute)
    refused = _record(run, "start", None, decisions)
    if refused:
        reasons = "; ".join(f"{d.policy_id} v{d.policy_version}: {d.reason}" for d in refused)
        run.emit(RunFailed(run_id=run.run.run_id, reason=f"refused by policy: {reasons}"))
        return False
    return True


def check_dispatch(
    run: Builder, name: str, action: str, input: dict[str, JsonValue]
) -> tuple[bool, StepGrant | None]:
    """Judge an attempt about to be dispatched: whether it may go, and its grant."""
    assert run.story is not None
    decisions, grant = dispatch_decisions(run.policies, run.story, name, action, input)
    refused = _record(run, "dispatch", name, decisions)
    if refused:
        first = refused[0]
        fail_step(run, name, "PolicyDenied", _message(first))
        return False, None
    return True, grant


def check_for_each(run: Builder, name: str, count: int) -> bool:
    """Judge a for_each's list length against ``max_for_each``."""
    assert run.story is not None
    decisions = for_each_decisions(run.policies, run.story, name, count)
    refused = _record(run, "for_each", name, decisions)
    if refused:
        fail_step(run, name, "PolicyDenied", _message(refused[0]))
        return False
    return True


def record_executor_denial(run: Builder, command: FailStep) -> None:
    """The executor refused the final request: record the decision it reports."""
    assert command.policy is not None
    decision = command.policy.model_copy(update={"outcome": "deny"})
    run.emit(
        PolicyDenied(run_id=command.run_id, stage="execute", step=command.step, decision=decision)
    )


def _message(decision: PolicyDecision) -> str:
    policy = f"{decision.policy_id} v{decision.policy_version}"
    return f"denied by policy {policy} ({decision.rule}): {decision.reason}"
