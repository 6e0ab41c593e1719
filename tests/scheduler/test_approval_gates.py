"""Gate semantics in the pure decider (ADR 0410): quorum, four-eyes, deny comments,
escalation, reminders, context and confidence gates; and that replay reproduces them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from pydantic import JsonValue
from scheduler_log import RUN, T0, Log, fire_due

from baton_common import ids
from baton_common.commands import CompleteStep, DecideApproval, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import StepStatus, replay
from baton_common.story import StoryError, parse_story

HEAD = "id: gates\nversion: 1\n%strigger: {webhook: {path: g}}\nsteps:\n"
GATE = ids.gate_id(RUN, "review")


def story(body: str, owner: str = "") -> Log:
    return Log(parse_story(HEAD % (f"owner: {owner}\n" if owner else "") + body))


def begin(log: Log, trigger: dict[str, JsonValue] | None = None, by: str = "alice") -> list[str]:
    return log.send(StartRun(run_id=RUN, story_id="gates", trigger=trigger or {}, initiator=by))


def decide(log: Log, who: str, decision: str = "approve", **extra: object) -> list[str]:
    groups = extra.pop("groups", ["oncall"])
    command = DecideApproval(
        run_id=RUN,
        gate_id=GATE,
        decision=decision,  # type: ignore[arg-type]
        approver=who,
        approver_groups=groups,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    return log.send(command)


def reason(log: Log) -> str:
    return str(log.envelopes[-1].data["reason"])


QUORUM = (
    "  review: {approval: {approvers: [group:oncall], required: 2}}\n"
    "  act: {needs: [review], action: http}\n"
)


def test_a_quorum_records_votes_and_closes_on_the_second_distinct_person() -> None:
    log = story(QUORUM)
    assert begin(log) == ["run.started", "approval.requested"]
    assert log.envelopes[-1].data["required"] == 2
    assert log.envelopes[-1].data["excluded"] == ["alice"]
    assert decide(log, "alice") == ["command.rejected"]
    assert reason(log) == "four-eyes: alice started this run and cannot approve it"
    assert decide(log, "bob") == ["approval.vote-recorded"]
    assert log.envelopes[-1].data["approvals"] == 1
    assert log.last_tasks == []  # the gate stays open
    assert decide(log, "bob") == ["command.rejected"]
    assert reason(log) == f"bob already approved gate {GATE}"
    assert decide(log, "carol") == ["approval.granted", "step.dispatched"]
    assert log.run.steps["review"].output == {
        "decision": "approved",
        "approver": "carol",
        "comment": None,
        "approvals": ["bob", "carol"],
    }
    assert log.last_tasks[0].envelope.data["outcome"] == "approved"
    assert decide(log, "dave") == ["command.rejected"]
    assert "is closed (succeeded)" in reason(log)
    assert replay(log.envelopes) == log.state
    assert verify_chain(log.envelopes) is None


def test_a_decision_the_channel_refused_is_only_recorded_never_applied() -> None:
    log = story(QUORUM)
    begin(log)
    # bob is eligible, but the channel refused (say its view of the gate was closed)
    assert decide(log, "bob", refused=f"gate {GATE} is escalated") == ["command.rejected"]
    assert reason(log) == f"refused by the api channel: gate {GATE} is escalated"
    assert log.run.steps["review"].votes == []
    assert decide(log, "bob") == ["approval.vote-recorded"]  # his own decision still counts
    assert replay(log.envelopes) == log.state


def test_one_eligible_deny_closes_a_quorum_gate_even_after_votes() -> None:
    log = story(QUORUM)
    begin(log)
    decide(log, "bob")
    assert decide(log, "mallory", "deny", groups=["interns"]) == ["command.rejected"]
    assert "mallory is not an approver" in reason(log)
    assert decide(log, "carol", "deny", comment="no") == [
        "approval.denied",
        "step.skipped",
        "run.failed",
    ]
    assert log.last_tasks[0].envelope.data["outcome"] == "denied"


def test_the_initiator_may_deny_their_own_run() -> None:
    log = story(QUORUM)
    begin(log)
    assert decide(log, "alice", "deny")[0] == "approval.denied"


def test_concurrent_approve_and_deny_resolve_in_log_order() -> None:
    one = "  review: {approval: {approvers: [group:oncall]}}\n"
    one += "  act: {needs: [review], action: http}\n"
    first = story(one)
    begin(first)
    assert decide(first, "bob", "approve") == ["approval.granted", "step.dispatched"]
    assert decide(first, "carol", "deny") == ["command.rejected"]
    second = story(one)
    begin(second)
    assert decide(second, "carol", "deny")[0] == "approval.denied"
    assert decide(second, "bob", "approve") == ["command.rejected"]
    assert reason(second) == "run is failed"  # the deny failed the run


def test_four_eyes_can_be_turned_off() -> None:
    log = story("  review: {approval: {approvers: [group:oncall], four_eyes: false}}\n")
    begin(log)
    assert log.envelopes[-1].data["excluded"] == []
    assert decide(log, "alice") == ["approval.granted", "run.succeeded"]


DESTRUCTIVE = (
    "  review: {approval: {approvers: [group:oncall]}}\n"
    "  plan: {needs: [review], action: http}\n"
    "  wipe: {needs: [plan], action: http, destructive: true}\n"
)


def test_the_owner_of_a_guarded_destructive_step_cannot_approve() -> None:
    log = story(DESTRUCTIVE, owner="dora")
    begin(log, by="ingest")
    assert log.envelopes[-1].data["excluded"] == ["dora", "ingest"]
    assert decide(log, "dora") == ["command.rejected"]
    assert reason(log) == (
        "four-eyes: dora owns story gates, whose destructive step(s) wipe this gate guards"
        " and cannot approve it"
    )
    assert decide(log, "bob")[0] == "approval.granted"


def test_an_owner_that_is_a_group_or_a_gate_guarding_nothing_destructive_excludes_no_owner() -> (
    None
):
    grouped = story(DESTRUCTIVE, owner="group:secops")
    begin(grouped, by="ingest")
    assert grouped.envelopes[-1].data["excluded"] == ["ingest"]
    harmless = story(DESTRUCTIVE.replace(", destructive: true", ""), owner="dora")
    begin(harmless, by="ingest")
    assert decide(harmless, "dora")[0] == "approval.granted"


def test_the_initiator_is_the_start_commands_actor_and_a_sub_story_inherits_it() -> None:
    log = story("  review: {approval: {approvers: [group:oncall]}}\n")
    begin(log, by="erin")
    assert log.run.initiator == "erin"
    assert log.envelopes[0].data["initiator"] == "erin"
    caller = story("  call: {story: {id: child}}\n")
    begin(caller, by="erin")
    [start] = [t.envelope for t in caller.last_tasks if t.envelope.type == "baton.run.start.v1"]
    assert start.data["initiator"] == "erin"


def test_a_deny_needs_a_comment_when_the_gate_says_so() -> None:
    log = story(
        "  review: {approval: {approvers: [group:oncall], require_comment_on_deny: true}}\n"
    )
    begin(log)
    assert log.envelopes[-1].data["require_comment_on_deny"] is True
    assert decide(log, "bob", "deny", comment="   ") == ["command.rejected"]
    assert reason(log) == f"a comment is required to deny gate {GATE}"
    assert decide(log, "bob", "deny", comment="false positive")[0] == "approval.denied"


ESCALATE = (
    "  review:\n    approval:\n      approvers: [group:oncall]\n      timeout: 1h\n"
    "      on_timeout: escalate\n      escalate_to: [group:leads]\n"
    "      escalation_timeout: 30m\n      remind_before: 10m\n"
    "  act: {needs: [review], action: http}\n"
)


def test_a_deadline_escalates_once_then_denies_with_reminders_before_each() -> None:
    log = story(ESCALATE)
    assert begin(log) == ["run.started", "approval.requested", "timer.scheduled", "timer.scheduled"]
    deadline = datetime.fromisoformat(str(log.envelopes[1].data["deadline"]))
    assert deadline == T0 + timedelta(hours=1)
    assert fire_due(log, T0 + timedelta(minutes=50)) == ["timer.fired", "approval.reminded"]
    reminder = log.last_tasks[0].envelope.data
    assert reminder["type"] == "baton.task.gate-reminder.v1"
    assert reminder["approvers"] == ["group:oncall"]
    out = fire_due(log, T0 + timedelta(hours=1))
    assert out == ["timer.fired", "approval.escalated", "timer.scheduled", "timer.scheduled"]
    assert log.run.steps["review"].approvers == ["group:leads", "group:oncall"]
    closed, reopened = (t.envelope.data for t in log.last_tasks)
    assert closed["outcome"] == "escalated"
    assert (reopened["type"], reopened["round"], reopened["approvers"]) == (
        "baton.task.gate-opened.v1",
        2,
        ["group:leads", "group:oncall"],
    )
    assert decide(log, "mallory", groups=["interns"]) == ["command.rejected"]
    assert fire_due(log, T0 + timedelta(minutes=80)) == ["timer.fired", "approval.reminded"]
    out = fire_due(log, T0 + timedelta(minutes=90))
    assert out == ["timer.fired", "approval.denied", "step.skipped", "run.failed"]
    assert log.envelopes[-3].data["comment"] == "no decision within 0:30:00 after escalation"
    assert log.last_tasks[0].envelope.data["outcome"] == "expired"
    assert decide(log, "bob") == ["command.rejected"]
    assert reason(log) == "run is failed"
    assert replay(log.envelopes) == log.state


def test_a_decision_after_an_approving_deadline_says_so() -> None:
    log = story(
        "  review: {approval: {approvers: [group:oncall], timeout: 1h, on_timeout: approve}}\n"
        "  act: {needs: [review], action: http}\n"
    )
    begin(log)
    assert fire_due(log, T0 + timedelta(hours=1)) == [
        "timer.fired",
        "approval.granted",
        "step.dispatched",
    ]
    assert decide(log, "bob") == ["command.rejected"]
    assert reason(log) == f"approval gate {GATE} approved at its deadline"


def test_the_escalation_group_may_decide_the_reopened_gate() -> None:
    log = story(ESCALATE)
    begin(log)
    assert decide(log, "lee", groups=["leads"]) == ["command.rejected"]  # not yet
    fire_due(log, T0 + timedelta(hours=1))
    assert decide(log, "lee", groups=["leads"]) == ["approval.granted", "step.dispatched"]
    assert log.run.timers == {}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("{approvers: [a], timeout: 1h, on_timeout: escalate}", "needs `escalate_to`"),
        ("{approvers: [a], on_timeout: escalate, escalate_to: [b]}", "needs a `timeout`"),
        ("{approvers: [a], escalate_to: [b]}", "is for `on_timeout: escalate`"),
        ("{approvers: [a], remind_before: 1h}", "`remind_before` needs a `timeout`"),
        ("{approvers: [a], required: 0}", "greater than or equal to 1"),
    ],
)
def test_bad_gates_are_refused_with_the_reason(bad: str, why: str) -> None:
    with pytest.raises(StoryError, match=re.escape(why)):
        parse_story(HEAD % "" + f"  review: {{approval: {bad}}}\n")


CONFIDENCE = (
    "  verdict: {action: ai.classify}\n"
    "  review:\n    needs: [verdict]\n"
    '    gate: {when: "steps.verdict.output.confidence < 0.85"}\n'
    "    approval:\n      approvers: [group:oncall]\n"
    '      message: "{{ steps.verdict.output.label }}?"\n'
    '      context:\n        verdict: "{{ steps.verdict.output.label }}"\n'
    '        confidence: "{{ steps.verdict.output.confidence }}"\n'
    '        reasoning: "{{ steps.verdict.output.reasoning }}"\n'
    "  contain: {needs: [review], action: http}\n"
)


def _verdict(log: Log, confidence: float) -> list[str]:
    output: JsonValue = {"label": "malicious", "confidence": confidence, "reasoning": "beacons"}
    return log.send(
        CompleteStep(run_id=RUN, step="verdict", attempt_id=log.attempt("verdict"), output=output)
    )


def test_a_confidence_gate_opens_with_its_context_when_the_condition_holds() -> None:
    log = story(CONFIDENCE)
    begin(log)
    assert _verdict(log, 0.6) == ["step.succeeded", "approval.requested"]
    opened = log.last_tasks[0].envelope.data
    assert opened["message"] == "malicious?"
    assert opened["context"] == {"verdict": "malicious", "confidence": 0.6, "reasoning": "beacons"}


def test_a_confidence_gate_passes_the_step_when_not_needed() -> None:
    log = story(CONFIDENCE)
    begin(log)
    assert _verdict(log, 0.97) == ["step.succeeded", "approval.not-needed", "step.dispatched"]
    assert log.envelopes[-2].data["reason"] == (
        "gate condition is false: steps.verdict.output.confidence < 0.85"
    )
    assert log.run.steps["review"].status is StepStatus.SUCCEEDED
    assert log.run.steps["contain"].status is StepStatus.DISPATCHED
    assert log.last_tasks[0].topic != "baton.tasks.approvals"
    assert replay(log.envelopes) == log.state


def test_a_confidence_gate_that_cannot_be_evaluated_fails_the_step() -> None:
    log = story(CONFIDENCE.replace("confidence < 0.85", "missing.x < 1"))
    begin(log)
    assert _verdict(log, 0.5)[:2] == ["step.succeeded", "step.failed"]
    assert "gate when:" in str(log.envelopes[3].data["message"])


def test_gate_is_only_for_approval_steps() -> None:
    with pytest.raises(StoryError, match="`gate` is for approval steps"):
        parse_story(HEAD % "" + '  a: {action: http, gate: {when: "true"}}\n')
