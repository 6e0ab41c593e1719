"""The decider: ``decide(state, command, story, now) -> events``, pure (DESIGN.md rule 2).

No I/O, no clock, no randomness: ``now`` is the command's log timestamp and ids are
derived from the run, step and attempt, so replaying the log gives the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import (
    CancelRun,
    Command,
    CompleteStep,
    DecideApproval,
    FailStep,
    StartRun,
)
from baton_common.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    CommandRejected,
    RunCancelled,
    RunDeduplicated,
    RunEvent,
    RunFailed,
    RunStarted,
    RunSucceeded,
    StepDispatched,
    StepFailed,
    StepSkipped,
    StepSucceeded,
)
from baton_common.expressions import ExpressionError, evaluate_condition, render_value
from baton_common.state import RunState, StepState, StepStatus, evolve
from baton_common.story import Step, Story

__all__ = ["Decision", "decide", "render_context"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The events a command caused, and the run state after them (None: no run)."""

    events: list[RunEvent]
    state: RunState | None


class _Run:
    """Accumulates events while keeping the state they produce current."""

    def __init__(self, state: RunState | None, now: datetime) -> None:
        self.state = state
        self.events: list[RunEvent] = []
        self._now = now

    def emit(self, event: RunEvent) -> None:
        self.events.append(event)
        if self.state is not None or isinstance(event, RunStarted):
            self.state = evolve(self.state, event, seq=0, hash="", time=self._now)

    @property
    def run(self) -> RunState:
        assert self.state is not None  # emit(RunStarted) happens before any step event
        return self.state


def render_context(state: RunState) -> dict[str, JsonValue]:
    """What templates and conditions see: ``event``, ``steps`` and ``run``."""
    steps: dict[str, JsonValue] = {
        name: {"status": step.status.value, "output": step.output, "error": step.error}
        for name, step in state.steps.items()
    }
    run: dict[str, JsonValue] = {
        "id": state.run_id,
        "story_id": state.story_id,
        "story_version": state.story_version,
    }
    return {"event": state.trigger, "steps": steps, "run": run}


def decide(
    state: RunState | None, command: Command, story: Story | None, now: datetime, command_id: str
) -> Decision:
    """Decide what ``command`` means for the run in ``state``.

    Args:
        state: the run's current state, or None if the run does not exist.
        command: the validated command payload.
        story: the story version the run uses (for StartRun: the version asked for).
        now: the command's log timestamp; the only clock the decider reads.
        command_id: the command envelope's id, quoted by rejections and dedup events.
    """
    run = _Run(state, now)
    handler = _HANDLERS[type(command)]
    reason = handler(run, command, story, now, command_id)
    if reason is not None:
        return Decision(
            [
                CommandRejected(
                    run_id=command.run_id,
                    command_type=command.type,
                    command_id=command_id,
                    reason=reason,
                )
            ],
            state,
        )
    return Decision(run.events, run.state)


def _start(run: _Run, cmd: Command, story: Story | None, now: datetime, cid: str) -> str | None:
    assert isinstance(cmd, StartRun)
    if run.state is not None:
        existing = run.state
        in_window = existing.dedup_until is not None and now < datetime.fromisoformat(
            existing.dedup_until
        )
        same_intake = cmd.ingest_id is not None and cmd.ingest_id == existing.ingest_id
        if in_window or same_intake:
            run.emit(
                RunDeduplicated(
                    run_id=cmd.run_id,
                    dedup_key=cmd.dedup_key or existing.dedup_key or "",
                    duplicate_command_id=cid,
                    ingest_id=cmd.ingest_id,
                )
            )
            return None
        return f"run {cmd.run_id} already exists and its dedup window has ended"
    if story is None:
        version = cmd.story_version if cmd.story_version is not None else "newest"
        return f"unknown story {cmd.story_id} (version {version})"
    until = None
    if cmd.dedup_key is not None:
        window = timedelta(seconds=cmd.dedup_window_seconds or 0)
        until = (now + window).isoformat()
    run.emit(
        RunStarted(
            run_id=cmd.run_id,
            story_id=story.id,
            story_version=story.version,
            trigger=cmd.trigger,
            dedup_key=cmd.dedup_key,
            dedup_until=until,
            ingest_id=cmd.ingest_id,
        )
    )
    _advance(run, story)
    return None


def _complete(run: _Run, cmd: Command, story: Story | None, now: datetime, cid: str) -> str | None:
    assert isinstance(cmd, CompleteStep)
    if (reason := _check_attempt(run.state, story, cmd.step, cmd.attempt_id)) is not None:
        return reason
    assert story is not None
    step = run.run.steps[cmd.step]
    run.emit(
        StepSucceeded(
            run_id=cmd.run_id,
            step=cmd.step,
            attempt=step.attempt,
            attempt_id=cmd.attempt_id,
            output=cmd.output,
        )
    )
    _advance(run, story)
    return None


def _fail(run: _Run, cmd: Command, story: Story | None, now: datetime, cid: str) -> str | None:
    assert isinstance(cmd, FailStep)
    if (reason := _check_attempt(run.state, story, cmd.step, cmd.attempt_id)) is not None:
        return reason
    assert story is not None
    step = run.run.steps[cmd.step]
    will_retry = (
        cmd.error_kind == "retryable" and step.attempt < story.steps[cmd.step].retry.max_attempts
    )
    run.emit(
        StepFailed(
            run_id=cmd.run_id,
            step=cmd.step,
            attempt=step.attempt,
            attempt_id=cmd.attempt_id,
            error_kind=cmd.error_kind,
            error_type=cmd.error_type,
            message=cmd.message,
            will_retry=will_retry,
        )
    )
    _advance(run, story)
    return None


def _decide_approval(
    run: _Run, cmd: Command, story: Story | None, now: datetime, cid: str
) -> str | None:
    assert isinstance(cmd, DecideApproval)
    if (reason := _check_running(run.state, story)) is not None:
        return reason
    assert story is not None
    waiting = [n for n, s in run.run.steps.items() if s.gate_id == cmd.gate_id]
    if not waiting:
        return f"unknown approval gate {cmd.gate_id}"
    name = waiting[0]
    if run.run.steps[name].status is not StepStatus.WAITING:
        return f"approval gate {cmd.gate_id} is closed ({run.run.steps[name].status.value})"
    gate = story.steps[name].approval
    assert gate is not None
    groups = {f"group:{g}" for g in cmd.approver_groups}
    if cmd.approver not in gate.approvers and not groups & set(gate.approvers):
        return f"{cmd.approver} is not an approver of gate {cmd.gate_id}"
    decision = ApprovalGranted if cmd.decision == "approve" else ApprovalDenied
    run.emit(
        decision(
            run_id=cmd.run_id,
            step=name,
            gate_id=cmd.gate_id,
            approver=cmd.approver,
            comment=cmd.comment,
            channel=cmd.channel,
        )
    )
    _advance(run, story)
    return None


def _cancel(run: _Run, cmd: Command, story: Story | None, now: datetime, cid: str) -> str | None:
    assert isinstance(cmd, CancelRun)
    if (reason := _check_running(run.state, story)) is not None:
        return reason
    run.emit(RunCancelled(run_id=cmd.run_id, reason=cmd.reason, requested_by=cmd.requested_by))
    return None


def _check_running(state: RunState | None, story: Story | None) -> str | None:
    if state is None:
        return "unknown run"
    if state.finished:
        return f"run is {state.status.value}"
    if story is None:
        return f"story {state.story_id} version {state.story_version} is not available"
    return None


def _check_attempt(
    state: RunState | None, story: Story | None, step_name: str, attempt_id: str
) -> str | None:
    if (reason := _check_running(state, story)) is not None:
        return reason
    assert state is not None
    step = state.steps.get(step_name)
    if step is None:
        return f"step {step_name} has not been dispatched"
    if step.attempt_id != attempt_id:
        return f"result for attempt {attempt_id}, but the current attempt is {step.attempt_id}"
    if step.status is not StepStatus.DISPATCHED:
        return f"step {step_name} attempt {attempt_id} already has a result ({step.status.value})"
    return None


def _advance(run: _Run, story: Story) -> None:
    """Dispatch every step whose needs are met, then finish the run if nothing is left."""
    progressed = True
    while progressed and not run.run.finished:
        progressed = False
        for name, step in story.steps.items():
            current = run.run.steps.get(name, StepState())
            if current.status is StepStatus.PENDING and current.attempt > 0:
                _dispatch(run, name, step, current.attempt + 1)  # a retry
                progressed = True
            elif current.status is StepStatus.PENDING and _needs_done(run.run, step):
                _start_step(run, name, step)
                progressed = True
    _finish_if_done(run, story)


def _needs_done(state: RunState, step: Step) -> bool:
    return all(state.steps.get(n, StepState()).status.done for n in step.needs)


def _start_step(run: _Run, name: str, step: Step) -> None:
    state = run.run
    unmet = [n for n in step.needs if state.steps[n].status is not StepStatus.SUCCEEDED]
    if unmet:
        run.emit(
            StepSkipped(run_id=state.run_id, step=name, reason=f"needs not met: {', '.join(unmet)}")
        )
        return
    if step.if_ is not None:
        try:
            wanted = evaluate_condition(step.if_, render_context(state))
        except ExpressionError as exc:
            _fail_step(run, name, "ExpressionError", str(exc))
            return
        if not wanted:
            run.emit(StepSkipped(run_id=state.run_id, step=name, reason=f"if: {step.if_}"))
            return
    _dispatch(run, name, step, 1)


def _dispatch(run: _Run, name: str, step: Step, attempt: int) -> None:
    state = run.run
    context = render_context(state)
    if step.approval is not None:
        try:
            message = (
                render_value(step.approval.message, context) if step.approval.message else None
            )
        except ExpressionError as exc:
            _fail_step(run, name, "ExpressionError", str(exc))
            return
        run.emit(
            ApprovalRequested(
                run_id=state.run_id,
                step=name,
                gate_id=ids.gate_id(state.run_id, name),
                approvers=list(step.approval.approvers),
                message=str(message) if message is not None else None,
            )
        )
        return
    assert step.action is not None
    try:
        rendered = render_value(dict(step.with_), context)
    except ExpressionError as exc:
        _fail_step(run, name, "ExpressionError", str(exc))
        return
    assert isinstance(rendered, dict)
    run.emit(
        StepDispatched(
            run_id=state.run_id,
            step=name,
            attempt=attempt,
            attempt_id=ids.attempt_id(state.run_id, name, attempt),
            action=step.action,
            queue=step.queue,
            input=rendered,
        )
    )


def _fail_step(run: _Run, name: str, error_type: str, message: str) -> None:
    attempt = run.run.steps.get(name, StepState()).attempt
    run.emit(
        StepFailed(
            run_id=run.run.run_id,
            step=name,
            attempt=attempt,
            attempt_id=ids.attempt_id(run.run.run_id, name, attempt),
            error_kind="permanent",
            error_type=error_type,
            message=message,
            will_retry=False,
        )
    )


def _finish_if_done(run: _Run, story: Story) -> None:
    state = run.run
    if state.finished:
        return
    failed = [n for n in story.steps if state.steps.get(n, StepState()).status is StepStatus.FAILED]
    if failed:
        step = state.steps[failed[0]]
        run.emit(RunFailed(run_id=state.run_id, reason=step.error or "step failed", step=failed[0]))
        return
    if all(state.steps.get(n, StepState()).status.done for n in story.steps):
        run.emit(RunSucceeded(run_id=state.run_id))


_Handler = Callable[[_Run, Command, Story | None, datetime, str], str | None]
_HANDLERS: dict[type, _Handler] = {
    StartRun: _start,
    CompleteStep: _complete,
    FailStep: _fail,
    DecideApproval: _decide_approval,
    CancelRun: _cancel,
}
