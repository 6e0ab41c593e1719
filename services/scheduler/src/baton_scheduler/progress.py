"""Moving a run forward through its story: dispatch, skip, wait, retry, finish.

Pure like the rest of the decider: ``now`` is the deciding command's log time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Final

from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import ErrorKind, TimerKind
from baton_common.events import (
    RunEvent,
    RunStarted,
    StepDispatched,
    StepFailed,
    TimerScheduled,
)
from baton_common.expressions import ExpressionError, render_value
from baton_common.policy import Policy, StepGrant
from baton_common.state import RunState, StepState, evolve
from baton_common.story import HandlerAction, RetryPolicy, Step, Story
from baton_common.trusted import trusted

__all__ = [
    "NOT_STARTED",
    "Builder",
    "backoff",
    "child_of",
    "dispatch",
    "dispatch_any",
    "fail_attempt",
    "fail_step",
    "render_context",
    "retry_wait",
    "schedule",
]


NOT_STARTED: Final = StepState()  # shared: building a default StepState costs a validation


class Builder:
    """Accumulates one run's events while keeping the state they produce current."""

    def __init__(self, state: RunState | None, now: datetime) -> None:
        self.state = state
        self.events: list[RunEvent] = []
        self.after: list[RunState | None] = []  # per event: the state it left, unstamped
        self.now = now
        self.story: Story | None = None  # the run's story, for gates' four-eyes rules
        self.policies: tuple[Policy, ...] = ()  # the policies in force (ADR 0910)

    def emit(self, event: RunEvent) -> None:
        self.events.append(event)
        if self.state is not None or isinstance(event, RunStarted):
            self.state = evolve(self.state, event, seq=0, hash="", time=self.now)
        self.after.append(self.state)

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


def backoff(policy: RetryPolicy, attempt: int, attempt_id: str) -> timedelta:
    """The wait after failed ``attempt``: exponential, capped, with jitter from the attempt id.

    The jitter fraction is a hash of ``attempt_id``, not a random draw, so a replay of
    the log schedules the same retry at the same time (DESIGN.md rule 2).
    """
    base = policy.backoff.total_seconds() * policy.multiplier ** max(attempt - 1, 0)
    capped = min(base, policy.max_backoff.total_seconds())
    digest = hashlib.sha256(attempt_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=capped * (1 - policy.jitter * fraction))


def retry_wait(
    policy: RetryPolicy, attempt: int, attempt_id: str, retry_after_seconds: float | None
) -> timedelta:
    """The backoff, but never shorter than the other side's ``Retry-After`` unless that
    exceeds ``max_backoff``: the cap still holds, so a hostile or broken server cannot
    park a run for a day."""
    wait = backoff(policy, attempt, attempt_id)
    if retry_after_seconds is None:
        return wait
    asked = min(timedelta(seconds=retry_after_seconds), policy.max_backoff)
    return max(wait, asked)


def schedule(
    run: Builder,
    kind: TimerKind,
    after: timedelta,
    *,
    step: str | None = None,
    attempt: int | None = None,
) -> None:
    """Record that the run needs a ``FireTimer`` of ``kind`` after ``after``."""
    state = run.run
    run.emit(
        TimerScheduled(
            run_id=state.run_id,
            timer_id=ids.timer_id(state.run_id, kind, step, attempt),
            kind=kind,
            step=step,
            attempt=attempt,
            fire_at=run.now + after,
        )
    )


def fail_attempt(
    run: Builder,
    story: Story,
    name: str,
    *,
    error_kind: ErrorKind,
    error_type: str,
    message: str,
    http_status: int | None = None,
    retry_after_seconds: float | None = None,
) -> None:
    """Record the current attempt of ``name`` as failed and schedule its retry if allowed.

    ``retry_on`` matches the error type, or ``http_<status>`` when the executor names the
    HTTP status. A ``retry_after_seconds`` (the other side's ``Retry-After``) lengthens
    the wait to at least that long, within the policy's ``max_backoff`` (see
    :func:`retry_wait`).
    """
    step = run.run.steps[name]
    child = child_of(name)
    if child is not None:
        policy = story.steps[child[0]].retry
    elif name in story.steps:
        policy = story.steps[name].retry
    else:
        policy = _handler(story, name).retry
    will_retry = (
        error_kind == "retryable"
        and step.attempt < policy.max_attempts
        and (
            policy.retry_on is None
            or error_type in policy.retry_on
            or (http_status is not None and f"http_{http_status}" in policy.retry_on)
        )
    )
    attempt_id = step.attempt_id or ids.attempt_id(run.run.run_id, name, step.attempt)
    run.emit(
        StepFailed(
            run_id=run.run.run_id,
            step=name,
            attempt=step.attempt,
            attempt_id=attempt_id,
            error_kind=error_kind,
            error_type=error_type,
            message=message,
            will_retry=will_retry,
            http_status=http_status,
            retry_after_seconds=retry_after_seconds,
        )
    )
    if not will_retry:
        return
    wait = retry_wait(policy, step.attempt, attempt_id, retry_after_seconds)
    if wait <= timedelta(0):
        dispatch_any(run, story, name, step.attempt + 1)
    else:
        schedule(run, "retry", wait, step=name, attempt=step.attempt + 1)


def child_of(name: str) -> tuple[str, int] | None:
    """``(parent, index)`` for a for_each child's step name ``parent[index]``."""
    if not name.endswith("]") or "[" not in name:
        return None
    parent, _, index = name[:-1].partition("[")
    return parent, int(index)


def _handler(story: Story, name: str) -> HandlerAction:
    """The closing handler a ``compensate:<step>`` or ``on_failure`` step name refers to."""
    if name == "on_failure":
        handler = story.on_failure
    else:
        handler = story.steps[name.removeprefix("compensate:")].compensate
    assert handler is not None  # handler names come from CompensationStarted
    return handler


def dispatch_any(run: Builder, story: Story, name: str, attempt: int) -> None:
    """Dispatch attempt ``attempt`` of a story step or of a closing handler."""
    if name in story.steps:
        dispatch(run, name, story.steps[name], attempt)
        return
    if (child := child_of(name)) is not None:
        dispatch(run, name, story.steps[child[0]], attempt)
        return
    handler = _handler(story, name)
    try:
        rendered = render_value(dict(handler.with_), render_context(run.run))
    except ExpressionError as exc:
        fail_step(run, name, "ExpressionError", str(exc))
        return
    assert isinstance(rendered, dict)
    allowed, grant = _policy_check(run, name, handler.action, rendered)
    if not allowed:
        return
    run.emit(
        trusted(
            StepDispatched,
            run_id=run.run.run_id,
            step=name,
            attempt=attempt,
            attempt_id=ids.attempt_id(run.run.run_id, name, attempt),
            action=handler.action,
            queue=handler.queue,
            input=rendered,
            policy=grant,
        )
    )


def dispatch(run: Builder, name: str, step: Step, attempt: int) -> None:
    """Send attempt ``attempt`` of an action step, or open an approval step's gate."""
    state = run.run
    context = render_context(state)
    if (child := child_of(name)) is not None:
        items = state.steps[child[0]].items or []
        context = {**context, "item": items[child[1]], "index": child[1]}
    if step.approval is not None:
        from baton_scheduler.decide_approval import open_gate  # gates build on this module

        open_gate(run, name, step, context)
        return
    try:
        rendered = render_value(dict(step.with_), context)
    except ExpressionError as exc:
        fail_step(run, name, "ExpressionError", str(exc))
        return
    assert isinstance(rendered, dict)
    attempt_id = ids.attempt_id(state.run_id, name, attempt)
    if step.story is not None:  # a sub-story: the journal turns this into its StartRun
        run.emit(
            trusted(
                StepDispatched,
                run_id=state.run_id,
                step=name,
                attempt=attempt,
                attempt_id=attempt_id,
                action="story",
                queue="",
                input=rendered,
                child_run_id=ids.run_id_for(step.story.id, f"parent:{attempt_id}"),
                child_story_id=step.story.id,
                child_story_version=step.story.version,
            )
        )
    else:
        assert step.action is not None
        allowed, grant = _policy_check(run, name, step.action, rendered)
        if not allowed:
            return
        run.emit(
            trusted(
                StepDispatched,
                run_id=state.run_id,
                step=name,
                attempt=attempt,
                attempt_id=attempt_id,
                action=step.action,
                queue=step.queue,
                input=rendered,
                policy=grant,
            )
        )
    if step.timeout is not None:
        schedule(run, "step_timeout", step.timeout, step=name, attempt=attempt)


def _policy_check(
    run: Builder, name: str, action: str, rendered: dict[str, JsonValue]
) -> tuple[bool, StepGrant | None]:
    if not run.policies:
        return True, None
    from baton_scheduler.policy_gate import check_dispatch  # it builds on this module

    return check_dispatch(run, name, action, rendered)


def fail_step(run: Builder, name: str, error_type: str, message: str) -> None:
    attempt = run.run.steps.get(name, NOT_STARTED).attempt
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
