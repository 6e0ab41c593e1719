"""Policies in the pure decider: run start, dispatch, for_each and executor refusals."""

from __future__ import annotations

from dataclasses import replace

from scheduler_log import RUN, T0, Log

from baton_common.commands import CompleteStep, DecideApproval, FailStep, StartRun
from baton_common.events import EVENT_ADAPTER, PolicyDenied
from baton_common.hashing import verify_chain
from baton_common.policy import PolicyDecision
from baton_common.state import RunStatus, StepStatus, replay
from baton_scheduler.decide import Context, decide

from .policies import STRICT, TRIAGE, only, story

TRIGGER = {"ip": "203.0.113.9", "target": "https://evil.example/contain"}


def start(log: Log, trigger: dict[str, object] | None = None) -> list[str]:
    return log.send(StartRun(run_id=RUN, story_id=log.story.id, trigger=trigger or TRIGGER))  # type: ignore[arg-type]


def denied(log: Log) -> list[PolicyDenied]:
    events = [EVENT_ADAPTER.validate_python(e.data) for e in log.envelopes]
    return [e for e in events if isinstance(e, PolicyDenied)]


def test_an_allowed_dispatch_is_recorded_and_its_task_carries_the_grant() -> None:
    log = Log(TRIAGE, only(STRICT))
    out = start(log)
    assert out == [
        "run.started",
        "policy.evaluated",  # workflow.run
        "policy.evaluated",  # workflow.triggers
        "policy.evaluated",  # workflow.destructive_needs_approval
        "policy.evaluated",  # actions.max_fan_out
        "policy.evaluated",  # actions.rate_limits
        "policy.evaluated",  # actions.http for lookup
        "step.dispatched",
    ]
    (task,) = log.last_tasks
    grant = task.envelope.data["policy"]
    assert isinstance(grant, dict)
    assert grant["limits"] == [
        {
            "policy_id": "strict",
            "policy_version": 2,
            "hosts": ["127.0.0.1:8085", "api.good.example"],
            "methods": ["GET", "POST"],
            "providers": None,
            "models": None,
            "tools": None,
        }
    ]


def test_a_denied_host_fails_the_step_with_the_reason_and_no_task() -> None:
    log = Log(TRIAGE, only(STRICT))
    start(log)
    log.send(CompleteStep(run_id=RUN, step="lookup", attempt_id=log.attempt("lookup")))
    gate = log.run.steps["approve"].gate_id
    assert gate is not None
    out = log.send(
        DecideApproval(
            run_id=RUN,
            gate_id=gate,
            decision="approve",
            approver="alice",
            approver_groups=["secops-oncall"],
        )
    )
    assert out == ["approval.granted", "policy.denied", "step.failed", "run.failed"]
    assert [t.envelope.type for t in log.last_tasks] == ["baton.task.gate-closed.v1"]
    (refusal,) = denied(log)
    assert refusal.stage == "dispatch"
    assert refusal.step == "contain"
    assert refusal.decision.rule == "actions.http.hosts"
    assert refusal.decision.input == {
        "action": "http",
        "method": "POST",
        "host": "evil.example:443",
    }
    step = log.run.steps["contain"]
    assert step.status is StepStatus.FAILED
    assert step.error == (
        "denied by policy strict v2 (actions.http.hosts): host evil.example:443 is not "
        "allowed by policy strict v2 (allowed: 127.0.0.1:8085, api.good.example)"
    )
    assert log.run.status is RunStatus.FAILED
    # the decisions are part of the run's chained history
    verify_chain(log.of(RUN))
    assert replay(log.of(RUN)) == log.run


def test_an_executor_refusal_is_recorded_and_never_retried() -> None:
    retried = TRIAGE.model_copy(
        update={
            "steps": {
                **TRIAGE.steps,
                "lookup": TRIAGE.steps["lookup"].model_copy(
                    update={
                        "retry": TRIAGE.steps["lookup"].retry.model_copy(update={"max_attempts": 5})
                    }
                ),
            }
        }
    )
    log = Log(retried, only(STRICT))
    start(log)
    decision = PolicyDecision(
        outcome="deny",
        policy_id="strict",
        policy_version=2,
        rule="actions.http.hosts",
        reason="host vault.internal:443 is not allowed",
        subject="lookup",
        input={"action": "http", "host": "vault.internal:443"},
    )
    out = log.send(
        FailStep(
            run_id=RUN,
            step="lookup",
            attempt_id=log.attempt("lookup"),
            error_kind="retryable",  # whatever the executor says, a refusal is final
            error_type="PolicyDenied",
            message="denied by policy strict v2 (actions.http.hosts): host vault.internal:443",
            policy=decision,
        )
    )
    assert out == ["policy.denied", "step.failed", "step.skipped", "step.skipped", "run.failed"]
    (refusal,) = denied(log)
    assert refusal.stage == "execute"
    assert refusal.decision == decision


def test_a_run_of_a_story_its_policy_refuses_fails_at_start() -> None:
    other = TRIAGE.model_copy(update={"owner": "it-ops"})
    log = Log(other, only(STRICT))
    out = start(log)
    assert out[0] == "run.started"
    assert out[-1] == "run.failed"
    assert "policy.denied" in out
    assert "step.dispatched" not in out
    (refusal,) = denied(log)
    assert refusal.stage == "start"
    assert refusal.decision.reason == "team it-ops may not run triage"


def test_the_rate_limit_refuses_a_run_beyond_it() -> None:
    log = Log(TRIAGE, only(STRICT))
    command = StartRun(run_id=RUN, story_id="triage", trigger=TRIGGER)  # type: ignore[arg-type]
    context = Context(T0, "cmd-1", 6, policies=only(STRICT), started_last_minute=2)
    decision = decide(None, command, TRIAGE, context)
    types = [e.type for e in decision.events]
    assert types[-2:] == ["baton.policy.denied.v1", "baton.run.failed.v1"]
    refusal = decision.events[-2]
    assert isinstance(refusal, PolicyDenied)
    assert refusal.decision.rule == "actions.rate_limits"
    allowed = decide(None, command, TRIAGE, replace(context, started_last_minute=1))
    assert "baton.step.dispatched.v1" in [e.type for e in allowed.events]
    assert log.policies == only(STRICT)


def test_a_for_each_judged_by_the_policy_in_force_when_it_explodes() -> None:
    fan = story(
        """
id: fan
version: 1
owner: secops
trigger: {webhook: {path: fan}}
steps:
  first: {action: transform, with: {data: 1}}
  each:
    needs: [first]
    action: http
    for_each: event.hosts
    max_items: 10
    with: {url: "https://api.good.example/{{ item }}"}
"""
    )
    lax = STRICT.model_copy(
        update={"version": 1, "actions": STRICT.actions.model_copy(update={"max_for_each": 10})}
    )
    log = Log(fan, only(lax))
    start(log, {"hosts": [f"h{i}" for i in range(8)]})
    # version 3 of the policy, published while the run waits, allows 5 items
    log.policies = only(
        STRICT.model_copy(
            update={"version": 3, "actions": STRICT.actions.model_copy(update={"max_for_each": 5})}
        )
    )
    out = log.send(CompleteStep(run_id=RUN, step="first", attempt_id=log.attempt("first")))
    assert out[-3:] == ["policy.denied", "step.failed", "run.failed"], out
    assert log.run.steps["each"].error == (
        "denied by policy strict v3 (actions.max_for_each): for_each gave 8 items (limit 5)"
    )


def test_without_policies_nothing_changes() -> None:
    log = Log(TRIAGE)
    assert start(log) == ["run.started", "step.dispatched"]
    (task,) = log.last_tasks
    assert task.envelope.data.get("policy") is None
