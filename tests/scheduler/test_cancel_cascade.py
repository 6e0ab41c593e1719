"""Cancellation cascades from a run to the sub-story runs it still waits for."""

from __future__ import annotations

from scheduler_log import RUN, Log

from baton_common.commands import (
    COMMAND_ADAPTER,
    CancelRun,
    Command,
    CompleteStep,
    FailStep,
    StartRun,
)
from baton_common.state import RunStatus
from baton_common.story import parse_story

PARENT = parse_story(
    """
id: parent
version: 1
trigger: {webhook: {path: p}}
steps:
  create:
    action: http
    with: {url: "http://create"}
    compensate: {action: http, with: {url: "http://undo"}}
  enrich:
    needs: [create]
    story: {id: child}
    with: {host: "{{ event.host }}"}
  side: {action: http, with: {url: "http://side"}}
"""
)
CHILD = parse_story(
    """
id: child
version: 1
trigger: {webhook: {path: c}}
inputs: {host: {required: true}}
steps:
  lookup: {action: http, with: {url: "http://dns/{{ event.host }}"}}
"""
)


def commands_from(log: Log) -> list[Command]:
    return [
        COMMAND_ADAPTER.validate_python(t.envelope.data)
        for t in log.last_tasks
        if t.topic == "baton.commands"
    ]


def calling() -> tuple[Log, Log]:
    """A parent whose `enrich` step waits for a child run that has started."""
    parent = Log(PARENT)
    parent.send(StartRun(run_id=RUN, story_id="parent", trigger={"host": "h1"}))
    parent.send(CompleteStep(run_id=RUN, step="create", attempt_id=parent.attempt("create")))
    (start,) = commands_from(parent)
    assert isinstance(start, StartRun)
    assert parent.run.steps["enrich"].child_run_id == start.run_id
    child = Log(CHILD)
    child.run_id = start.run_id
    child.send(start)
    return parent, child


def test_cancelling_the_parent_cancels_its_child_and_the_child_answer_is_rejected() -> None:
    parent, child = calling()
    assert parent.send(CancelRun(run_id=RUN, reason="wrong alert", requested_by="ann")) == [
        "run.cancelled"
    ]
    (cancel,) = commands_from(parent)
    assert isinstance(cancel, CancelRun)
    assert (cancel.run_id, cancel.requested_by, cancel.compensate) == (child.run_id, "ann", False)
    assert "wrong alert" in cancel.reason
    assert child.send(cancel) == ["run.cancelled"]
    assert child.run.status is RunStatus.CANCELLED
    (answer,) = commands_from(child)
    assert isinstance(answer, FailStep)
    assert answer.error_type == "child_run_cancelled"
    assert parent.send(answer) == ["command.rejected"]  # nothing is silently dropped


def test_a_compensating_cancel_asks_the_child_to_compensate_too() -> None:
    parent, child = calling()
    events = parent.send(CancelRun(run_id=RUN, reason="undo", requested_by="ann", compensate=True))
    assert events[0] == "compensation.started"
    cancels = [c for c in commands_from(parent) if isinstance(c, CancelRun)]
    assert [(c.run_id, c.compensate) for c in cancels] == [(child.run_id, True)]


def test_a_failing_parent_cancels_its_child() -> None:
    parent, child = calling()
    failed = parent.send(
        FailStep(
            run_id=RUN,
            step="side",
            attempt_id=parent.attempt("side"),
            error_kind="permanent",
            error_type="http_400",
            message="bad",
        )
    )
    assert "compensation.started" in failed  # `create` is undone first
    cancels = [c for c in commands_from(parent) if isinstance(c, CancelRun)]
    assert cancels == []  # still closing: the child may yet answer
    undo = parent.send(
        CompleteStep(
            run_id=RUN, step="compensate:create", attempt_id=parent.attempt("compensate:create")
        )
    )
    assert undo[-1] == "run.failed"
    (cancel,) = [c for c in commands_from(parent) if isinstance(c, CancelRun)]
    assert (cancel.run_id, cancel.compensate) == (child.run_id, False)
    assert "failed" in cancel.reason


def test_a_child_that_already_answered_is_left_alone() -> None:
    parent, child = calling()
    child.send(CompleteStep(run_id=child.run_id, step="lookup", attempt_id=child.attempt("lookup")))
    (done,) = commands_from(child)
    parent.send(done)
    assert parent.send(CancelRun(run_id=RUN, reason="stop", requested_by="ann")) == [
        "run.cancelled"
    ]
    assert commands_from(parent) == []


def test_a_finished_child_reports_to_its_parent_once() -> None:
    _parent, child = calling()
    child.send(CompleteStep(run_id=child.run_id, step="lookup", attempt_id=child.attempt("lookup")))
    assert len(commands_from(child)) == 1
    late = child.send(CancelRun(run_id=child.run_id, reason="late", requested_by="ann"))
    assert late == ["command.rejected"]
    assert commands_from(child) == []  # no second CompleteStep for the parent
