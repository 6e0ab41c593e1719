"""Approval gates in the decider (pure, ADR 0410): opening, quorum, four-eyes, deadlines.

- A gate opens when its step starts, unless its confidence gate (``gate: {when}``) does
  not hold: then the step passes with ``ApprovalNotNeeded`` saying why.
- ``required: n`` distinct eligible people must approve; each approval short of the
  quorum is an ``ApprovalVoteRecorded``; the one that completes it is ``ApprovalGranted``.
  One deny by an eligible person closes the gate denied (a veto), whatever the votes.
- Four-eyes (``four_eyes``, default on): the run's initiator, and for a gate guarding a
  destructive step the story's owner when it names a person, cannot approve (they may
  deny). Every refusal is a ``CommandRejected`` with the reason.
- At the deadline the gate is approved, denied (outcome ``expired``), or once escalated:
  re-opened to ``escalate_to`` with a new deadline, after which it is denied.
  ``remind_before`` schedules an ``approval_reminder`` timer before each deadline.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import DecideApproval
from baton_common.events import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalNotNeeded,
    ApprovalReminded,
    ApprovalRequested,
    ApprovalVoteRecorded,
)
from baton_common.expressions import ExpressionError, evaluate_condition, render_value
from baton_common.state import RunState, StepStatus, Timer
from baton_common.story import ApprovalGate, Step, Story
from baton_scheduler.progress import Builder, fail_step, schedule

__all__ = [
    "TIMER_ACTOR",
    "approval_timer",
    "decide_gate",
    "excluded_approvers",
    "guarded_destructive",
    "open_gate",
]

TIMER_ACTOR = "baton/timeout"


def guarded_destructive(story: Story, name: str) -> list[str]:
    """The destructive steps that need step ``name``, directly or through other steps."""
    guarded: set[str] = set()
    frontier = {name}
    while frontier:
        nxt = {n for n, s in story.steps.items() if frontier & set(s.needs)} - guarded
        guarded |= nxt
        frontier = nxt
    return sorted(n for n in guarded if story.steps[n].destructive)


def excluded_approvers(state: RunState, story: Story, name: str) -> dict[str, str]:
    """Who four-eyes refuses as an approver of step ``name``'s gate, and why."""
    gate = story.steps[name].approval
    if gate is None or not gate.four_eyes:
        return {}
    out: dict[str, str] = {}
    destructive = guarded_destructive(story, name)
    owner = story.owner
    if destructive and owner and not owner.startswith("group:"):
        out[owner] = f"owns story {story.id}, whose destructive step(s) {', '.join(destructive)}"
        out[owner] += " this gate guards"
    if state.initiator:
        out[state.initiator] = "started this run"
    return out


def open_gate(run: Builder, name: str, step: Step, context: dict[str, JsonValue]) -> None:
    """Open step ``name``'s gate, or pass the step when its confidence gate does not hold."""
    gate = step.approval
    assert gate is not None
    state = run.run
    gate_id = ids.gate_id(state.run_id, name)
    if step.gate is not None:
        try:
            needed = evaluate_condition(step.gate.when, context)
        except ExpressionError as exc:
            fail_step(run, name, "ExpressionError", f"gate when: {exc}")
            return
        if not needed:
            reason = f"gate condition is false: {step.gate.when}"
            run.emit(
                ApprovalNotNeeded(run_id=state.run_id, step=name, gate_id=gate_id, reason=reason)
            )
            return
    try:
        message = render_value(gate.message, context) if gate.message else None
        shown = render_value(dict(gate.context), context) if gate.context else None
    except ExpressionError as exc:
        fail_step(run, name, "ExpressionError", str(exc))
        return
    story_excluded = sorted(_excluded_at_open(run, name))
    run.emit(
        ApprovalRequested(
            run_id=state.run_id,
            step=name,
            gate_id=gate_id,
            approvers=list(gate.approvers),
            message=str(message) if message is not None else None,
            required=gate.required,
            excluded=story_excluded,
            context=shown if isinstance(shown, dict) else None,
            deadline=run.now + gate.timeout if gate.timeout is not None else None,
            require_comment_on_deny=gate.require_comment_on_deny,
        )
    )
    _arm(run, name, gate, gate.timeout, None)


def _arm(
    run: Builder, name: str, gate: ApprovalGate, wait: timedelta | None, attempt: int | None
) -> None:
    """Schedule a round's deadline (and its reminder, when it falls after now)."""
    if wait is None:
        return
    schedule(run, "approval_timeout", wait, step=name, attempt=attempt)
    if gate.remind_before is not None and wait > gate.remind_before:
        schedule(run, "approval_reminder", wait - gate.remind_before, step=name, attempt=attempt)


def _excluded_at_open(run: Builder, name: str) -> dict[str, str]:
    if run.story is None:  # only when a caller builds runs without the decider
        return {}
    return excluded_approvers(run.run, run.story, name)


def decide_gate(run: Builder, cmd: DecideApproval, story: Story) -> str | None:
    """Apply a person's decision to an open gate; return the rejection reason, if any."""
    waiting = [n for n, s in run.run.steps.items() if s.gate_id == cmd.gate_id]
    if not waiting:
        return f"unknown approval gate {cmd.gate_id}"
    name = waiting[0]
    step = run.run.steps[name]
    if step.status is not StepStatus.WAITING:
        if step.decided_by == TIMER_ACTOR:
            verb = "approved" if step.status is StepStatus.SUCCEEDED else "expired"
            return f"approval gate {cmd.gate_id} {verb} at its deadline"
        return f"approval gate {cmd.gate_id} is closed ({step.status.value})"
    gate = story.steps[name].approval
    assert gate is not None
    approvers = step.approvers if step.approvers is not None else list(gate.approvers)
    groups = {f"group:{g}" for g in cmd.approver_groups}
    if cmd.approver not in approvers and not groups & set(approvers):
        return f"{cmd.approver} is not an approver of gate {cmd.gate_id}"
    comment = cmd.comment.strip() if cmd.comment and cmd.comment.strip() else None
    if cmd.decision == "deny":
        if gate.require_comment_on_deny and comment is None:
            return f"a comment is required to deny gate {cmd.gate_id}"
        run.emit(
            ApprovalDenied(
                run_id=cmd.run_id,
                step=name,
                gate_id=cmd.gate_id,
                approver=cmd.approver,
                comment=cmd.comment,
                channel=cmd.channel,
            )
        )
        return None
    refused = excluded_approvers(run.run, story, name)
    if cmd.approver in refused:
        return f"four-eyes: {cmd.approver} {refused[cmd.approver]} and cannot approve it"
    if cmd.approver in step.votes:
        return f"{cmd.approver} already approved gate {cmd.gate_id}"
    count = len(step.votes) + 1
    if count < gate.required:
        run.emit(
            ApprovalVoteRecorded(
                run_id=cmd.run_id,
                step=name,
                gate_id=cmd.gate_id,
                approver=cmd.approver,
                comment=cmd.comment,
                channel=cmd.channel,
                approvals=count,
                required=gate.required,
            )
        )
        return None
    run.emit(
        ApprovalGranted(
            run_id=cmd.run_id,
            step=name,
            gate_id=cmd.gate_id,
            approver=cmd.approver,
            comment=cmd.comment,
            channel=cmd.channel,
            approvals=[*step.votes, cmd.approver] if gate.required > 1 else None,
        )
    )
    return None


def approval_timer(run: Builder, timer: Timer, story: Story) -> None:
    """A gate's deadline or reminder came due (its ``TimerFired`` is already emitted)."""
    name = timer.step
    assert name is not None
    gate = story.steps[name].approval
    step = run.run.steps[name]
    if gate is None or step.status is not StepStatus.WAITING:
        return
    gate_id = step.gate_id or ""
    approvers = step.approvers if step.approvers is not None else list(gate.approvers)
    if timer.kind == "approval_reminder":
        deadline = timer.fire_at + (gate.remind_before or timedelta(0))
        run.emit(
            ApprovalReminded(
                run_id=run.run.run_id,
                step=name,
                gate_id=gate_id,
                approvers=approvers,
                deadline=deadline,
            )
        )
        return
    if gate.on_timeout == "escalate" and not step.escalated:
        assert gate.escalate_to is not None
        assert gate.timeout is not None
        wait = gate.escalation_timeout or gate.timeout
        widened = list(dict.fromkeys([*gate.escalate_to, *approvers]))
        run.emit(
            ApprovalEscalated(
                run_id=run.run.run_id,
                step=name,
                gate_id=gate_id,
                approvers=widened,
                escalated_to=list(gate.escalate_to),
                deadline=run.now + wait,
            )
        )
        _arm(run, name, gate, wait, 2)
        return
    decided = ApprovalGranted if gate.on_timeout == "approve" else ApprovalDenied
    within = gate.timeout if not step.escalated else (gate.escalation_timeout or gate.timeout)
    run.emit(
        decided(
            run_id=run.run.run_id,
            step=name,
            gate_id=gate_id,
            approver=TIMER_ACTOR,
            comment=f"no decision within {within}"
            + (" after escalation" if step.escalated else ""),
            channel="timer",
        )
    )
