"""The decider: ``decide(state, command, story, now) -> events``, pure (DESIGN.md rule 2).

No I/O, no clock, no randomness: ``now`` is the command's log timestamp and ids are
derived from the run, step and attempt, so replaying the log gives the same events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from baton_common import ids
from baton_common.commands import (
    CancelRun,
    Command,
    CompleteStep,
    DecideApproval,
    FailStep,
    FireTimer,
    StartRun,
)
from baton_common.events import (
    CommandRejected,
    DedupSlotAdvanced,
    RunCancelled,
    RunDeduplicated,
    RunEvent,
    RunStarted,
    StepSucceeded,
)
from baton_common.policy import Policy
from baton_common.state import RunState, StepStatus
from baton_common.story import Story
from baton_common.trusted import trusted
from baton_scheduler.advance import advance, begin_closing
from baton_scheduler.decide_approval import decide_gate
from baton_scheduler.policy_gate import check_start, record_executor_denial
from baton_scheduler.progress import Builder, fail_attempt, render_context, schedule
from baton_scheduler.timers import fire

__all__ = ["Context", "Decision", "decide", "render_context"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The events a command caused (possibly for two runs) and the states after them.

    ``after`` holds, per event when the decider kept it, the state of the event's run
    after it as ``evolve`` gave it with ``seq`` 0 and no hash (None outside any chain):
    the journal stamps these instead of evolving each event again.
    """

    events: list[RunEvent]
    states: dict[str, RunState] = field(default_factory=dict)
    after: list[RunState | None] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision may read besides the run's own state, passed in to keep it pure.

    Attributes:
        now: the command's log timestamp; the only clock the decider reads.
        command_id: the command envelope's id, quoted by rejections and dedup events.
        partitions: the partition count of ``baton.commands`` (for new dedup generations).
        current: for a StartRun on a dedup slot, the state of the slot's newest run.
    """

    now: datetime
    command_id: str
    partitions: int
    current: RunState | None = None
    actor: str | None = None  # the command envelope's actor: a StartRun's is the initiator
    policies: tuple[Policy, ...] = ()  # the policies in force (ADR 0910)
    started_last_minute: int = 0  # for a StartRun: runs of its story started in the last minute


def decide(
    state: RunState | None, command: Command, story: Story | None, context: Context
) -> Decision:
    """Decide what ``command`` means for the run in ``state``.

    Args:
        state: the run's current state, or None if the run does not exist.
        command: the validated command payload.
        story: the story version the run uses (for StartRun: the version asked for).
        context: the command's time and id, and what else the decision may read.
    """
    if isinstance(command, StartRun):
        return _start(state, command, story, context)
    run = Builder(state, context.now)
    run.story = story
    run.policies = context.policies
    handler = _HANDLERS[type(command)]
    reason = handler(run, command, story, context)
    if reason is not None:
        return _rejected(state, command, context, reason)
    return Decision(run.events, {state.run_id: run.run} if state is not None else {}, run.after)


def _rejected(state: RunState | None, cmd: Command, ctx: Context, reason: str) -> Decision:
    event = CommandRejected(
        run_id=cmd.run_id, command_type=cmd.type, command_id=ctx.command_id, reason=reason
    )
    return Decision([event], {state.run_id: state} if state is not None else {})


def _start(state: RunState | None, cmd: StartRun, story: Story | None, ctx: Context) -> Decision:
    if state is None:
        run = Builder(None, ctx.now)
        run.story = story
        run.policies = ctx.policies
        if (reason := _begin(run, cmd, story, ctx, cmd.run_id, None)) is not None:
            return _rejected(None, cmd, ctx, reason)
        return Decision(run.events, {run.run.run_id: run.run}, run.after)
    slot = state
    latest = ctx.current if slot.dedup_current is not None and ctx.current else slot
    in_window = latest.dedup_until is not None and ctx.now < datetime.fromisoformat(
        latest.dedup_until
    )
    same_intake = cmd.ingest_id is not None and cmd.ingest_id in {
        latest.ingest_id,
        slot.ingest_id,
    }
    if in_window or same_intake:
        target = latest if in_window or cmd.ingest_id == latest.ingest_id else slot
        run = Builder(target, ctx.now)
        run.emit(
            RunDeduplicated(
                run_id=target.run_id,
                dedup_key=cmd.dedup_key or target.dedup_key or "",
                duplicate_command_id=ctx.command_id,
                ingest_id=cmd.ingest_id,
            )
        )
        return Decision(run.events, {target.run_id: run.run}, run.after)
    if cmd.dedup_key is None:
        return _rejected(state, cmd, ctx, f"run {cmd.run_id} already exists")
    # After the window: a new run in a fresh generation of the slot (ADR 0100).
    generation = slot.dedup_generation + 1
    new_id = ids.generation_run_id(slot.run_id, generation, ctx.partitions)
    fresh = Builder(None, ctx.now)
    fresh.story = story
    fresh.policies = ctx.policies
    if (reason := _begin(fresh, cmd, story, ctx, new_id, slot.run_id)) is not None:
        return _rejected(state, cmd, ctx, reason)
    marker = Builder(slot, ctx.now)
    marker.emit(
        DedupSlotAdvanced(
            run_id=slot.run_id, dedup_key=cmd.dedup_key, generation=generation, current=new_id
        )
    )
    return Decision(
        marker.events + fresh.events,
        {slot.run_id: marker.run, new_id: fresh.run},
        marker.after + fresh.after,
    )


def _begin(
    run: Builder,
    cmd: StartRun,
    story: Story | None,
    ctx: Context,
    run_id: str,
    slot: str | None,
) -> str | None:
    if story is None:
        version = cmd.story_version if cmd.story_version is not None else "newest"
        return f"unknown story {cmd.story_id} (version {version})"
    if cmd.parent_run_id is not None and story.inputs is not None:
        missing = [k for k, i in story.inputs.items() if i.required and k not in cmd.trigger]
        unknown = sorted(set(cmd.trigger) - set(story.inputs))
        if missing or unknown:
            problems = [f"missing input {k}" for k in missing]
            problems += [f"unknown input {k}" for k in unknown]
            return f"story {story.id} v{story.version}: {', '.join(problems)}"
    until = None
    if cmd.dedup_key is not None:
        window = timedelta(seconds=cmd.dedup_window_seconds or 0)
        until = (ctx.now + window).isoformat()
    run.emit(
        trusted(
            RunStarted,
            run_id=run_id,
            story_id=story.id,
            story_version=story.version,
            trigger=cmd.trigger,
            dedup_key=cmd.dedup_key,
            dedup_until=until,
            ingest_id=cmd.ingest_id,
            dedup_slot=slot,
            parent_run_id=cmd.parent_run_id,
            parent_step=cmd.parent_step,
            parent_attempt_id=cmd.parent_attempt_id,
            initiator=cmd.initiator or ctx.actor,
        )
    )
    if run.policies and not check_start(
        run,
        story,
        called=cmd.parent_run_id is not None,
        started_last_minute=ctx.started_last_minute,
    ):
        return None
    if story.timeout is not None:
        schedule(run, "run_timeout", story.timeout)
    advance(run, story)
    return None


def _complete(run: Builder, cmd: Command, story: Story | None, ctx: Context) -> str | None:
    assert isinstance(cmd, CompleteStep)
    if (reason := _check_attempt(run.state, story, cmd.step, cmd.attempt_id)) is not None:
        return reason
    assert story is not None
    step = run.run.steps[cmd.step]
    run.emit(
        trusted(
            StepSucceeded,
            run_id=cmd.run_id,
            step=cmd.step,
            attempt=step.attempt,
            attempt_id=cmd.attempt_id,
            output=cmd.output,
        )
    )
    advance(run, story)
    return None


def _fail(run: Builder, cmd: Command, story: Story | None, ctx: Context) -> str | None:
    assert isinstance(cmd, FailStep)
    if (reason := _check_attempt(run.state, story, cmd.step, cmd.attempt_id)) is not None:
        return reason
    assert story is not None
    if cmd.policy is not None:
        record_executor_denial(run, cmd)
    fail_attempt(
        run,
        story,
        cmd.step,
        error_kind="permanent" if cmd.policy is not None else cmd.error_kind,
        error_type=cmd.error_type,
        message=cmd.message,
        http_status=cmd.http_status,
        retry_after_seconds=cmd.retry_after_seconds,
    )
    advance(run, story)
    return None


def _decide_approval(run: Builder, cmd: Command, story: Story | None, ctx: Context) -> str | None:
    assert isinstance(cmd, DecideApproval)
    if cmd.refused is not None:  # the channel refused it; it is in the log for the record
        return f"refused by the {cmd.channel} channel: {cmd.refused}"
    if (reason := check_running(run.state, story)) is not None:
        return reason
    assert story is not None
    if run.run.closing is not None:
        return f"run is closing ({run.run.closing}): its gates take no decisions"
    if (reason := decide_gate(run, cmd, story)) is not None:
        return reason
    advance(run, story)
    return None


def _cancel(run: Builder, cmd: Command, story: Story | None, ctx: Context) -> str | None:
    assert isinstance(cmd, CancelRun)
    if (reason := check_running(run.state, story)) is not None:
        return reason
    assert story is not None
    if cmd.compensate and run.run.closing is None:
        begin_closing(run, story, "cancelled", cmd.reason, requested_by=cmd.requested_by)
        return None
    if cmd.compensate:
        return f"run is already closing ({run.run.closing}) and compensating"
    # a plain cancel stops the run at once, even while it is compensating
    run.emit(RunCancelled(run_id=cmd.run_id, reason=cmd.reason, requested_by=cmd.requested_by))
    return None


def _fire(run: Builder, cmd: Command, story: Story | None, ctx: Context) -> str | None:
    assert isinstance(cmd, FireTimer)
    if (reason := check_running(run.state, story)) is not None:
        return reason
    assert story is not None
    return fire(run, cmd, story)


def check_running(state: RunState | None, story: Story | None) -> str | None:
    """Why a command cannot apply to the run (unknown, finished, story missing), or None."""
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
    if (reason := check_running(state, story)) is not None:
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


_Handler = Callable[[Builder, Command, Story | None, Context], str | None]
_HANDLERS: dict[type, _Handler] = {
    CompleteStep: _complete,
    FailStep: _fail,
    DecideApproval: _decide_approval,
    CancelRun: _cancel,
    FireTimer: _fire,
}
