"""Sub-stories: the commands that carry a call to a child run and its result back.

Anything that crosses runs travels as a command (DESIGN.md rule 1). A ``story`` step's
dispatch becomes a ``StartRun`` for the child (its id derives from the step attempt, so
a retry starts a fresh child); the child's end, or the rejection of its start, becomes a
``CompleteStep`` / ``FailStep`` for the parent's step attempt. They are written in the
transaction of the event that causes them, keyed by the run they address.

Cancellation cascades down: when a run is cancelled or fails, each sub-story run it
still waits for gets a ``CancelRun``; when an operator's cancel makes it compensate,
those children are cancelled with ``compensate: true`` too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import CancelRun, CompleteStep, FailStep, StartRun
from baton_common.envelope import Envelope
from baton_common.events import (
    CommandRejected,
    CompensationStarted,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunSucceeded,
    StepDispatched,
)
from baton_common.kafka import to_envelope
from baton_common.settings import TopicSettings
from baton_common.state import RunState, StepStatus

__all__ = ["CallCommand", "call_commands", "rejected_call"]

SOURCE = "baton/scheduler"

CallCommand = tuple[str, str, Envelope]  # (topic, key, envelope)

# the events that may call another run (a sub-story's start, a result, a cancel cascade)
_CALLING: Final = frozenset(
    {StepDispatched, RunSucceeded, RunFailed, RunCancelled, CompensationStarted}
)


def _command(
    payload: StartRun | CompleteStep | FailStep | CancelRun,
    cause: Envelope,
    now: datetime,
    n: int,
) -> CallCommand:
    envelope = to_envelope(
        payload,
        id=ids.child_id(cause.id, 100 + n),  # apart from the task records' indices
        source=SOURCE,
        time=now,
        subject=payload.run_id,
        causationid=cause.id,
        correlationid=cause.correlationid,
        actor="baton/scheduler",
        traceparent=cause.traceparent,
    )
    return ("", payload.run_id, envelope)


def call_commands(
    event: RunEvent, cause: Envelope, after: RunState, topics: TopicSettings, now: datetime
) -> list[CallCommand]:
    """The cross-run commands ``event`` (already applied in ``after``) implies."""
    kind = type(event)
    if kind not in _CALLING or (isinstance(event, StepDispatched) and not event.child_run_id):
        return []  # most events call nothing
    out: list[CallCommand] = []
    if isinstance(event, StepDispatched) and event.child_run_id and event.child_story_id:
        start = StartRun(
            run_id=event.child_run_id,
            story_id=event.child_story_id,
            story_version=event.child_story_version,
            trigger=event.input,
            parent_run_id=after.run_id,
            parent_step=event.step,
            parent_attempt_id=event.attempt_id,
            initiator=after.initiator,
        )
        out.append(_command(start, cause, now, 0))
    elif (
        isinstance(event, RunSucceeded | RunFailed | RunCancelled)
        and after.parent_run_id
        and after.parent_step
        and after.parent_attempt_id
    ):
        parent, step, attempt = after.parent_run_id, after.parent_step, after.parent_attempt_id
        if isinstance(event, RunFailed | RunCancelled):
            failure = FailStep(
                run_id=parent,
                step=step,
                attempt_id=attempt,
                error_kind="permanent",
                error_type=f"child_run_{after.status.value}",
                message=f"sub-story run {after.run_id} {after.status.value}: {event.reason}",
            )
            out.append(_command(failure, cause, now, 0))
        else:
            outputs: dict[str, JsonValue] = {
                name: s.output
                for name, s in after.steps.items()
                if s.status is StepStatus.SUCCEEDED
            }
            result: JsonValue = {"run_id": after.run_id, "steps": outputs}
            done = CompleteStep(run_id=parent, step=step, attempt_id=attempt, output=result)
            out.append(_command(done, cause, now, 0))
    out.extend(_cascade(event, cause, after, now, first=len(out)))
    return [(topics.commands, key, env) for _, key, env in out]


def _cascade(
    event: RunEvent, cause: Envelope, after: RunState, now: datetime, *, first: int
) -> list[CallCommand]:
    """``CancelRun`` for the sub-story runs ``after`` still waits for, when it ends or an
    operator's cancel makes it compensate."""
    match event:
        case RunCancelled(requested_by=by):
            compensate, why = False, f"parent run {after.run_id} cancelled: {event.reason}"
        case RunFailed():
            compensate, why, by = False, f"parent run {after.run_id} failed", SOURCE
        case CompensationStarted(outcome="cancelled", requested_by=requested_by):
            compensate, by = True, requested_by or SOURCE
            why = f"parent run {after.run_id} cancelled: {event.reason}"
        case _:
            return []
    children = sorted(
        s.child_run_id
        for s in after.steps.values()
        if s.status is StepStatus.DISPATCHED and s.child_run_id is not None
    )
    return [
        _command(
            CancelRun(run_id=child, reason=why, requested_by=by, compensate=compensate),
            cause,
            now,
            first + n,
        )
        for n, child in enumerate(children)
    ]


def rejected_call(
    event: RunEvent, command: Envelope, topics: TopicSettings, now: datetime
) -> list[CallCommand]:
    """A child's StartRun was rejected (unknown story, bad inputs): fail the parent's step."""
    if (
        not isinstance(event, CommandRejected)
        or event.command_type != StartRun.model_fields["type"].default
    ):
        return []
    data = command.data
    parent, step, attempt = (
        data.get("parent_run_id"),
        data.get("parent_step"),
        data.get("parent_attempt_id"),
    )
    if not (isinstance(parent, str) and isinstance(step, str) and isinstance(attempt, str)):
        return []
    failure = FailStep(
        run_id=parent,
        step=step,
        attempt_id=attempt,
        error_kind="permanent",
        error_type="child_run_rejected",
        message=f"sub-story run {event.run_id} was not started: {event.reason}",
    )
    _, key, envelope = _command(failure, command, now, 0)
    return [(topics.commands, key, envelope)]
