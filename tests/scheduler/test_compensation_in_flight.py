"""A step with a `compensate` still in flight when its run begins closing is waited for:
if it succeeds it is undone too (newest first), if it fails there is nothing to undo."""

from __future__ import annotations

from datetime import timedelta

from scheduler_log import RUN, T0, Log, fire_due

from baton_common.commands import CancelRun, CompleteStep, FailStep, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, replay
from baton_common.story import parse_story

STORY = parse_story(
    """
id: inflight
version: 1
trigger: {webhook: {path: i}}
steps:
  create:
    action: http
    compensate: {action: http, with: {url: "http://undo/create"}}
  book:
    action: http
    timeout: 30s
    compensate: {action: http, with: {url: "http://undo/book"}}
  probe: {action: http}
"""
)


def begin() -> Log:
    log = Log(STORY)
    log.send(StartRun(run_id=RUN, story_id="inflight", trigger={}))
    return log


def done(log: Log, step: str) -> list[str]:
    return log.send(CompleteStep(run_id=RUN, step=step, attempt_id=log.attempt(step)))


def failed(log: Log, step: str) -> list[str]:
    return log.send(
        FailStep(
            run_id=RUN,
            step=step,
            attempt_id=log.attempt(step),
            error_kind="permanent",
            error_type="http_400",
            message="no",
        )
    )


def test_a_late_success_is_compensated_before_the_run_closes() -> None:
    log = begin()
    done(log, "create")
    assert failed(log, "probe") == [
        "step.failed",
        "compensation.started",
        "step.dispatched",  # compensate:create; `book` is still in flight
    ]
    assert log.run.handlers == ["compensate:create"]
    assert done(log, "book") == ["step.succeeded", "compensation.extended"]
    assert log.run.handlers == ["compensate:create", "compensate:book"]
    assert done(log, "compensate:create") == ["step.succeeded", "step.dispatched"]
    assert done(log, "compensate:book") == ["step.succeeded", "run.failed"]
    assert log.run.status is RunStatus.FAILED
    verify_chain(log.of(RUN))
    assert replay(log.of(RUN)) == log.run


def test_a_late_success_goes_ahead_of_handlers_not_yet_started() -> None:
    log = begin()
    done(log, "create")
    log.send(CancelRun(run_id=RUN, reason="undo", requested_by="ops", compensate=True))
    # compensate:create is dispatched; `book` then succeeds: it is the newest success,
    # but the running handler is not interrupted
    assert done(log, "book") == ["step.succeeded", "compensation.extended"]
    assert log.run.handlers == ["compensate:create", "compensate:book"]
    done(log, "compensate:create")
    assert done(log, "compensate:book")[-1] == "run.cancelled"


def test_a_late_failure_leaves_nothing_to_undo() -> None:
    log = begin()
    events = log.send(CancelRun(run_id=RUN, reason="undo", requested_by="ops", compensate=True))
    assert events == ["compensation.started"]  # nothing succeeded, but two are in flight
    assert log.run.handlers == []
    assert failed(log, "create") == ["step.failed"]  # `book` still in flight
    assert done(log, "book") == [
        "step.succeeded",
        "compensation.extended",
        "step.dispatched",
    ]
    assert done(log, "compensate:book") == ["step.succeeded", "run.cancelled"]


def test_the_wait_is_bounded_by_the_step_timeout() -> None:
    log = begin()
    failed(log, "create")  # nothing succeeded: closing waits only for `book`
    failed(log, "probe")
    assert log.run.closing == "failed"
    assert not log.run.finished
    fired = fire_due(log, T0 + timedelta(seconds=31))
    assert fired[-1] == "run.failed"
    assert "step.failed" in fired


def test_a_plain_cancel_still_stops_at_once() -> None:
    log = begin()
    log.send(CancelRun(run_id=RUN, reason="undo", requested_by="ops", compensate=True))
    assert log.send(CancelRun(run_id=RUN, reason="now", requested_by="ops")) == ["run.cancelled"]
    assert done(log, "book") == ["command.rejected"]
