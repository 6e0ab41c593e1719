"""Closing a run: compensations newest first, then on_failure; CancelRun with compensate."""

from __future__ import annotations

from datetime import timedelta

from pydantic import JsonValue
from scheduler_log import RUN, T0, Log, fire_due

from baton_common.commands import CancelRun, CompleteStep, DecideApproval, FailStep, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, StepStatus, replay
from baton_common.story import parse_story

STORY = """
id: undoable
version: 1
trigger: {webhook: {path: u}}
on_failure: {action: http, with: {url: "http://pager/{{ run.id }}"}}
steps:
  create:
    action: http
    with: {url: "http://api/create"}
    compensate: {action: http, with: {url: "http://api/delete/{{ steps.create.output.id }}"}}
  grant:
    needs: [create]
    action: http
    compensate:
      action: http
      with: {url: "http://api/revoke"}
      retry: {max_attempts: 2, backoff: 0s}
  plain: {needs: [grant], action: http}
  gate: {needs: [plain], approval: {approvers: [alice]}}
  final: {needs: [gate], action: http}
"""


def begin() -> Log:
    log = Log(parse_story(STORY))
    log.send(StartRun(run_id=RUN, story_id="undoable", trigger={}))
    done(log, "create", {"id": "r-7"})
    done(log, "grant")
    return log


def done(log: Log, step: str, output: JsonValue = None) -> list[str]:
    command = CompleteStep(run_id=RUN, step=step, attempt_id=log.attempt(step), output=output)
    return log.send(command)


def fail(log: Log, step: str, *, retryable: bool = False) -> list[str]:
    return log.send(
        FailStep(
            run_id=RUN,
            step=step,
            attempt_id=log.attempt(step),
            error_kind="retryable" if retryable else "permanent",
            error_type="http_400",
            message="bad request",
        )
    )


def dispatched_urls(log: Log) -> list[object]:
    return [
        e.data["input"]["url"]  # type: ignore[index,call-overload]
        for e in log.envelopes
        if e.type == "baton.step.dispatched.v1" and str(e.data["step"]).startswith(("comp", "on_"))
    ]


def test_a_failed_run_undoes_completed_steps_newest_first_then_on_failure() -> None:
    log = begin()
    out = fail(log, "plain")
    assert out == [
        "step.failed",
        "step.skipped",
        "step.skipped",
        "compensation.started",
        "step.dispatched",
    ]
    started = log.envelopes[-2].data
    assert started["handlers"] == ["compensate:grant", "compensate:create", "on_failure"]
    assert (started["outcome"], started["step"]) == ("failed", "plain")
    assert log.run.status is RunStatus.RUNNING  # closing, not finished
    assert done(log, "compensate:grant") == ["step.succeeded", "step.dispatched"]
    assert done(log, "compensate:create") == ["step.succeeded", "step.dispatched"]
    assert done(log, "on_failure") == ["step.succeeded", "run.failed"]
    assert dispatched_urls(log) == [
        "http://api/revoke",
        "http://api/delete/r-7",
        f"http://pager/{RUN}",
    ]
    assert log.runs[RUN].status is RunStatus.FAILED
    assert "bad request" in str(log.envelopes[-1].data["reason"])
    assert verify_chain(log.envelopes) is None
    assert replay(log.envelopes) == log.state


def test_a_failed_compensation_is_retried_recorded_and_the_next_still_runs() -> None:
    log = begin()
    fail(log, "plain")
    assert fail(log, "compensate:grant", retryable=True) == [
        "step.failed",
        "step.dispatched",
    ]  # policy allows 2
    assert log.run.steps["compensate:grant"].attempt == 2
    assert fail(log, "compensate:grant", retryable=True) == [
        "step.failed",
        "step.dispatched",
    ]  # next handler
    assert log.run.steps["compensate:create"].status is StepStatus.DISPATCHED
    done(log, "compensate:create")
    done(log, "on_failure")
    assert log.run.status is RunStatus.FAILED
    assert "compensate:grant failed" in str(log.envelopes[-1].data["reason"])


def test_cancel_with_compensate_undoes_and_then_cancels_without_on_failure() -> None:
    log = begin()
    cancel = CancelRun(run_id=RUN, reason="wrong target", requested_by="ops", compensate=True)
    assert log.send(cancel) == ["compensation.started", "step.dispatched"]
    assert log.envelopes[-2].data["handlers"] == ["compensate:grant", "compensate:create"]
    # the in-flight step may still answer; it starts nothing new
    assert done(log, "plain") == ["step.succeeded"]
    # a second compensating cancel is refused; a plain one would stop the run at once
    assert log.send(cancel) == ["command.rejected"]
    done(log, "compensate:grant")
    assert done(log, "compensate:create") == ["step.succeeded", "run.cancelled"]
    assert log.run.status is RunStatus.CANCELLED
    assert log.envelopes[-1].data["requested_by"] == "ops"


def test_cancel_with_compensate_and_nothing_to_undo_cancels_at_once() -> None:
    text = STORY.replace("steps:\n", "steps:\n  first: {action: http}\n").replace(
        "  create:\n", "  create:\n    needs: [first]\n"
    )
    log = Log(parse_story(text))
    log.send(StartRun(run_id=RUN, story_id="undoable", trigger={}))
    # only `first` is in flight, and it has no compensate: nothing to wait for or undo
    cancel = CancelRun(run_id=RUN, reason="x", requested_by="ops", compensate=True)
    assert log.send(cancel) == ["run.cancelled"]


def test_a_closing_run_takes_no_approval_decisions_and_closes_its_gate() -> None:
    log = begin()
    done(log, "plain")
    gate = log.run.steps["gate"].gate_id
    assert gate is not None
    log.send(CancelRun(run_id=RUN, reason="x", requested_by="ops", compensate=True))
    decision = DecideApproval(run_id=RUN, gate_id=gate, decision="approve", approver="alice")
    assert log.send(decision) == ["command.rejected"]
    done(log, "compensate:grant")
    done(log, "compensate:create")
    assert log.run.status is RunStatus.CANCELLED
    closed = [t.envelope.data for t in log.last_tasks]
    assert closed == [
        {
            "type": "baton.task.gate-closed.v1",
            "run_id": RUN,
            "gate_id": gate,
            "outcome": "cancelled",
            "approver": None,
            "comment": None,
        }
    ]


def test_compensation_retries_wait_for_their_timer() -> None:
    story = STORY.replace(
        "{max_attempts: 2, backoff: 0s}", "{max_attempts: 2, backoff: 5s, jitter: 0}"
    )
    log = Log(parse_story(story))
    log.send(StartRun(run_id=RUN, story_id="undoable", trigger={}))
    done(log, "create", {"id": "r-7"})
    done(log, "grant")
    fail(log, "plain")
    assert fail(log, "compensate:grant", retryable=True) == ["step.failed", "timer.scheduled"]
    assert fire_due(log, T0 + timedelta(seconds=5)) == ["timer.fired", "step.dispatched"]
    assert log.run.steps["compensate:grant"].attempt == 2
