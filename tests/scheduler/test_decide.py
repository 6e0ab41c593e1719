"""Given/when/then tests of the pure decider and journal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_log import PARTITIONS, RUN, T0, TRIGGER, Log, fire_due, start

from baton_common import ids
from baton_common.commands import (
    CancelRun,
    CompleteStep,
    DecideApproval,
    FailStep,
    StartRun,
)
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, StepStatus, replay
from baton_common.story import parse_story
from baton_scheduler.decide import Context, decide


def complete_lookup(log: Log) -> list[str]:
    return log.send(
        CompleteStep(
            run_id=RUN, step="lookup", attempt_id=log.attempt("lookup"), output={"status": 200}
        )
    )


def test_approval_message_reading_missing_output_fails_the_run() -> None:
    log = Log()
    start(log)
    out = log.send(CompleteStep(run_id=RUN, step="lookup", attempt_id=log.attempt("lookup")))
    assert out == ["step.succeeded", "step.failed", "step.skipped", "run.failed"]


def test_start_dispatches_the_first_step_with_rendered_input() -> None:
    log = Log()
    assert start(log) == ["run.started", "step.dispatched"]
    assert log.run.steps["lookup"].status is StepStatus.DISPATCHED
    (task,) = log.last_tasks
    assert task.topic == "baton.tasks.default"
    assert task.envelope.data["input"] == {"method": "GET", "url": "http://l/x"}
    assert task.envelope.data["attempt_id"] == ids.attempt_id(RUN, "lookup", 1)


def test_whole_run_approve_path_and_chain() -> None:
    log = Log()
    start(log)
    out = log.send(
        CompleteStep(
            run_id=RUN, step="lookup", attempt_id=log.attempt("lookup"), output={"status": 200}
        )
    )
    assert out == ["step.succeeded", "approval.requested"]
    gate = log.run.steps["approve"].gate_id
    assert gate == ids.gate_id(RUN, "approve")
    assert log.last_tasks[0].topic == "baton.tasks.approvals"
    assert log.last_tasks[0].envelope.data["message"] == "Send 'hi'? The lookup answered HTTP 200."
    out = log.send(
        DecideApproval(
            run_id=RUN,
            gate_id=gate,
            decision="approve",
            approver="alice",
            approver_groups=["secops-oncall"],
        )
    )
    assert out == ["approval.granted", "step.dispatched"]
    assert log.last_tasks[0].envelope.data["type"] == "baton.task.gate-closed.v1"
    notify_input = log.last_tasks[1].envelope.data["input"]
    assert isinstance(notify_input, dict)
    assert notify_input["json"] == {
        "message": "hi",
        "approved_by": "alice",
    }
    out = log.send(CompleteStep(run_id=RUN, step="notify", attempt_id=log.attempt("notify")))
    assert out == ["step.succeeded", "run.succeeded"]
    assert log.run.status is RunStatus.SUCCEEDED
    assert verify_chain(log.envelopes) is None
    assert [e.seq for e in log.envelopes] == list(range(1, 9))
    assert all(e.causationid and e.causationid.startswith("cmd-") for e in log.envelopes)
    assert replay(log.envelopes) == log.state


def test_deny_fails_the_run_and_closes_the_gate() -> None:
    log = Log()
    start(log)
    complete_lookup(log)
    gate = log.run.steps["approve"].gate_id
    assert gate is not None
    out = log.send(
        DecideApproval(
            run_id=RUN,
            gate_id=gate,
            decision="deny",
            approver="bob",
            approver_groups=["secops-oncall"],
            comment="not now",
        )
    )
    assert out == ["approval.denied", "step.skipped", "run.failed"]
    assert log.run.status is RunStatus.FAILED
    assert log.last_tasks[0].envelope.data["outcome"] == "denied"


@pytest.mark.parametrize(("approver", "groups"), [("mallory", []), ("mallory", ["other"])])
def test_only_approvers_can_decide(approver: str, groups: list[str]) -> None:
    log = Log()
    start(log)
    complete_lookup(log)
    gate = log.run.steps["approve"].gate_id
    assert gate is not None
    out = log.send(
        DecideApproval(
            run_id=RUN, gate_id=gate, decision="approve", approver=approver, approver_groups=groups
        )
    )
    assert out == ["command.rejected"]
    assert "is not an approver" in log.envelopes[-1].data["reason"]  # type: ignore[operator]
    assert log.run.steps["approve"].status is StepStatus.WAITING


def test_second_result_for_the_same_attempt_is_rejected() -> None:
    log = Log()
    start(log)
    attempt = log.attempt("lookup")
    log.send(CompleteStep(run_id=RUN, step="lookup", attempt_id=attempt, output={"status": 200}))
    assert log.send(CompleteStep(run_id=RUN, step="lookup", attempt_id=attempt)) == [
        "command.rejected"
    ]
    assert "already has a result" in str(log.envelopes[-1].data["reason"])
    assert verify_chain(log.envelopes) is None  # rejections are part of the chain


def test_result_for_an_old_attempt_is_rejected() -> None:
    log = Log()
    start(log)
    first = log.attempt("lookup")
    out = log.send(
        FailStep(
            run_id=RUN,
            step="lookup",
            attempt_id=first,
            error_kind="retryable",
            error_type="ConnectError",
            message="refused",
        )
    )
    assert out == ["step.failed", "timer.scheduled"]
    assert fire_due(log, T0 + timedelta(seconds=1)) == ["timer.fired", "step.dispatched"]
    assert log.run.steps["lookup"].attempt == 2
    out = log.send(CompleteStep(run_id=RUN, step="lookup", attempt_id=first))
    assert out == ["command.rejected"]


def test_retries_stop_at_max_attempts() -> None:
    log = Log()
    start(log)
    for expected in (
        ["step.failed", "timer.scheduled"],
        ["step.failed", "timer.scheduled"],
        ["step.failed", "step.skipped", "step.skipped", "run.failed"],
    ):
        fire_due(log, T0 + timedelta(minutes=10))
        out = log.send(
            FailStep(
                run_id=RUN,
                step="lookup",
                attempt_id=log.attempt("lookup"),
                error_kind="retryable",
                error_type="HTTP 503",
                message="unavailable",
            )
        )
        assert out == expected
    assert log.run.status is RunStatus.FAILED


def test_permanent_failure_is_not_retried() -> None:
    log = Log()
    start(log)
    out = log.send(
        FailStep(
            run_id=RUN,
            step="lookup",
            attempt_id=log.attempt("lookup"),
            error_kind="permanent",
            error_type="HTTP 404",
            message="not found",
        )
    )
    assert out[0] == "step.failed"
    assert out[-1] == "run.failed"


def test_commands_for_unknown_runs_are_rejected_outside_any_chain() -> None:
    log = Log()
    out = log.send(CancelRun(run_id=RUN, reason="x", requested_by="ops"))
    assert out == ["command.rejected"]
    assert log.envelopes[0].seq is None
    assert log.state is None


def test_unknown_story_is_rejected() -> None:
    state = None
    cmd = StartRun(run_id=RUN, story_id="nope", trigger={})
    decision = decide(state, cmd, None, Context(T0, "c1", PARTITIONS))
    assert [e.type for e in decision.events] == ["baton.command.rejected.v1"]


def test_dedup_inside_window_and_rejection_after() -> None:
    log = Log()
    start(log, dedup_key="A-1", dedup_window_seconds=3600)
    again = StartRun(
        run_id=RUN,
        story_id="hello-approval",
        trigger=TRIGGER,
        dedup_key="A-1",
        dedup_window_seconds=3600,
    )
    assert log.send(again, at=T0 + timedelta(minutes=5)) == ["run.deduplicated"]
    # after the window: a new run (tests/scheduler/test_dedup.py has the details)
    assert log.send(again, at=T0 + timedelta(hours=2))[:2] == ["dedup.advanced", "run.started"]


def test_redelivered_start_is_deduplicated_by_ingest_id() -> None:
    log = Log()
    start(log, ingest_id="evt-1")
    assert start(log, ingest_id="evt-1") == ["run.deduplicated"]


def test_if_false_skips_and_dependants_follow() -> None:
    story = parse_story(
        """
id: branchy
version: 1
trigger: {webhook: {path: b}}
steps:
  a: {action: http, with: {url: "http://a"}}
  b: {needs: [a], if: "steps.a.output.go", action: http, with: {url: "http://b"}}
  c: {needs: [b], action: http, with: {url: "http://c"}}
"""
    )
    log = Log(story)
    log.send(StartRun(run_id=RUN, story_id="branchy", trigger={}))
    out = log.send(
        CompleteStep(run_id=RUN, step="a", attempt_id=log.attempt("a"), output={"go": False})
    )
    assert out == ["step.succeeded", "step.skipped", "step.skipped", "run.succeeded"]


def test_fan_out_runs_independent_steps_together() -> None:
    story = parse_story(
        """
id: fan
version: 1
trigger: {webhook: {path: f}}
steps:
  a: {action: http, with: {url: "http://a"}}
  b: {action: http, with: {url: "http://b"}}
  join: {needs: [a, b], action: http, with: {url: "http://j/{{ steps.a.output }}"}}
"""
    )
    log = Log(story)
    assert log.send(StartRun(run_id=RUN, story_id="fan", trigger={})) == [
        "run.started",
        "step.dispatched",
        "step.dispatched",
    ]
    assert log.send(CompleteStep(run_id=RUN, step="a", attempt_id=log.attempt("a"), output=1)) == [
        "step.succeeded"
    ]
    out = log.send(CompleteStep(run_id=RUN, step="b", attempt_id=log.attempt("b")))
    assert out == ["step.succeeded", "step.dispatched"]
    assert log.last_tasks[0].envelope.data["input"] == {"url": "http://j/1"}


def test_template_error_fails_the_step_with_a_reason() -> None:
    log = Log()
    out = log.send(StartRun(run_id=RUN, story_id="hello-approval", trigger={"message": "m"}))
    assert out == ["run.started", "step.failed", "step.skipped", "step.skipped", "run.failed"]
    assert "lookup_url" in str(log.envelopes[1].data["message"])


def test_cancel_closes_open_gates() -> None:
    log = Log()
    start(log)
    complete_lookup(log)
    assert log.send(CancelRun(run_id=RUN, reason="false positive", requested_by="ops")) == [
        "run.cancelled"
    ]
    assert [t.envelope.data["outcome"] for t in log.last_tasks] == ["cancelled"]
    assert log.send(CancelRun(run_id=RUN, reason="again", requested_by="ops")) == [
        "command.rejected"
    ]


def test_decisions_are_deterministic() -> None:
    first, second = Log(), Log()
    for log in (first, second):
        start(log)
        complete_lookup(log)
    assert first.envelopes == second.envelopes
