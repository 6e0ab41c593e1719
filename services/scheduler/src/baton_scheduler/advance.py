"""Moving a run forward: start what its needs allow, then close it.

A run closes by succeeding, or, when a step fails or an operator cancels with
``compensate: true``, through its *handlers*: the ``compensate`` actions of the steps
that succeeded, newest first, then the story's ``on_failure``. Handlers run one at a
time, each recorded like a step (``compensate:<step>``, ``on_failure``); a handler that
fails (after its retries) is recorded and the next one still runs.

A step with a ``compensate`` that is still in flight when closing begins is waited for
(bounded by its ``timeout``): if it succeeds, its compensation joins the handlers ahead of
those not yet started (``CompensationExtended``: it is the newest success); if it fails
there is nothing to undo. A plain ``CancelRun`` still stops the run at once (ADR 0110).
"""

from __future__ import annotations

from typing import Final, Literal

from baton_common.events import (
    CompensationExtended,
    CompensationStarted,
    RunCancelled,
    RunFailed,
    RunSucceeded,
)
from baton_common.state import RunState, StepStatus
from baton_common.story import Story
from baton_common.trusted import trusted
from baton_scheduler.progress import NOT_STARTED, Builder, dispatch_any
from baton_scheduler.starting import implode, needs_done, start_step

__all__ = ["advance", "begin_closing", "handlers_for"]

_PENDING: Final = StepStatus.PENDING
_DONE: Final = frozenset(s for s in StepStatus if s.done)


def advance(run: Builder, story: Story) -> None:
    """Start every step whose needs are met, then finish or close the run if it is time."""
    if run.run.finished:
        return
    if run.run.closing is not None:
        _continue_closing(run, story)
        return
    progressed = True
    while progressed and not run.run.finished:
        progressed = False
        if _has_for_each(story):  # only a for_each step's children implode
            before = len(run.events)
            implode(run, story)
            progressed = len(run.events) > before
        state = run.run  # changes only when a step starts
        for name, step in story.steps.items():
            current = state.steps.get(name)  # None: not started (pending, attempt 0)
            if (
                current is None or (current.status is _PENDING and current.attempt == 0)
            ) and needs_done(state, step):
                start_step(run, name, step)
                state = run.run
                # a step left dispatched, delayed or waiting meets no other step's needs:
                # only one done at once (skipped, failed, not needed) may let a step
                # before it in the story start, and an exploded one (maybe of no items)
                # may implode, on another pass
                started = state.steps.get(name, NOT_STARTED)
                if started.status.done or started.items is not None:
                    progressed = True
    _finish_if_done(run, story)


# per story (by identity, the story held): whether a step explodes
_FOR_EACH: dict[int, tuple[Story, bool]] = {}


def _has_for_each(story: Story) -> bool:
    found = _FOR_EACH.get(id(story))
    if found is None or found[0] is not story:
        if len(_FOR_EACH) >= 1024:  # story versions are few; tests make many
            _FOR_EACH.clear()
        found = _FOR_EACH[id(story)] = (
            story,
            any(s.for_each is not None for s in story.steps.values()),
        )
    return found[1]


def handlers_for(
    state: RunState, story: Story, outcome: Literal["failed", "cancelled"]
) -> list[str]:
    """The handlers a closing run runs, in order: compensations newest first, then on_failure."""
    handlers = [
        f"compensate:{name}"
        for name in reversed(state.succeeded)
        if name in story.steps and story.steps[name].compensate is not None
    ]
    if outcome == "failed" and story.on_failure is not None:
        handlers.append("on_failure")
    return handlers


def begin_closing(
    run: Builder,
    story: Story,
    outcome: Literal["failed", "cancelled"],
    reason: str,
    *,
    step: str | None = None,
    requested_by: str | None = None,
) -> None:
    """Fail or cancel the run, through its handlers when it has any."""
    state = run.run
    handlers = handlers_for(state, story, outcome)
    if not handlers and not in_flight_undoable(state, story):
        if outcome == "failed":
            run.emit(RunFailed(run_id=state.run_id, reason=reason, step=step))
        else:
            run.emit(
                RunCancelled(run_id=state.run_id, reason=reason, requested_by=requested_by or "")
            )
        return
    run.emit(
        CompensationStarted(
            run_id=state.run_id,
            outcome=outcome,
            reason=reason,
            handlers=handlers,
            step=step,
            requested_by=requested_by,
        )
    )
    _continue_closing(run, story)


def in_flight_undoable(state: RunState, story: Story) -> list[str]:
    """Steps with a ``compensate`` whose attempt is in flight (a for_each step's children
    are not waited for: see docs/story-engine.md)."""
    return [
        name
        for name, step in story.steps.items()
        if step.compensate is not None
        and (current := state.steps.get(name)) is not None
        and current.status is StepStatus.DISPATCHED
        and current.items is None
    ]


def _add_late_compensations(run: Builder, story: Story) -> None:
    """Queue the compensation of a step that succeeded after closing began."""
    state = run.run
    for name in reversed(state.succeeded):
        handler = f"compensate:{name}"
        if (
            name not in story.steps
            or story.steps[name].compensate is None
            or handler in state.handlers
        ):
            continue
        handlers = list(state.handlers)
        started = [h for h in handlers if h in state.steps]
        handlers.insert(len(started), handler)
        run.emit(CompensationExtended(run_id=state.run_id, step=name, handlers=handlers))
        state = run.run


def _continue_closing(run: Builder, story: Story) -> None:
    _add_late_compensations(run, story)
    while True:
        state = run.run
        waiting = [h for h in state.handlers if not state.steps.get(h, NOT_STARTED).status.done]
        if not waiting:
            break
        current = state.steps.get(waiting[0], NOT_STARTED)
        if current.status is not StepStatus.PENDING or current.attempt > 0:
            return  # dispatched, or waiting for its retry timer
        dispatch_any(run, story, waiting[0], 1)
        if run.run.steps.get(waiting[0], NOT_STARTED).status is StepStatus.DISPATCHED:
            return
    if in_flight_undoable(state, story):
        return  # its result decides whether there is one more thing to undo
    failed = [h for h in state.handlers if state.steps[h].status is StepStatus.FAILED]
    reason = (state.closing_reason or "") + (f"; {', '.join(failed)} failed" if failed else "")
    if state.closing == "cancelled":
        run.emit(
            RunCancelled(run_id=state.run_id, reason=reason, requested_by=state.closing_by or "")
        )
    else:
        run.emit(RunFailed(run_id=state.run_id, reason=reason, step=state.closing_step))


def _finish_if_done(run: Builder, story: Story) -> None:
    state = run.run
    if state.finished or state.closing is not None:
        return
    steps = state.steps
    if len(steps) < len(story.steps) and all(
        s.status is not StepStatus.FAILED for s in steps.values()
    ):
        return  # a story step not started yet (steps holds only started ones), none failed
    all_done = True
    for name in story.steps:  # the first failed step in story order closes the run
        step = steps.get(name)
        if step is None:  # not started: pending
            all_done = False
        elif step.status is StepStatus.FAILED:
            begin_closing(run, story, "failed", step.error or "step failed", step=name)
            return
        elif step.status not in _DONE:
            all_done = False
    if all_done:
        run.emit(trusted(RunSucceeded, run_id=state.run_id))
