"""Timers as commands: retry backoff, step and run timeouts, delays, approval deadlines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_log import RUN, T0, Log, fire_due

from baton_common import ids
from baton_common.commands import CompleteStep, DecideApproval, FailStep, FireTimer, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, StepStatus, replay
from baton_common.story import RetryPolicy, StoryError, parse_story
from baton_scheduler.progress import backoff

SECOND = timedelta(seconds=1)


def story(steps: str, extra: str = "") -> Log:
    text = f"id: timed\nversion: 1\ntrigger: {{webhook: {{path: t}}}}\n{extra}steps:\n{steps}"
    log = Log(parse_story(text))
    return log


def begin(log: Log, trigger: dict[str, object] | None = None) -> list[str]:
    return log.send(StartRun(run_id=RUN, story_id="timed", trigger=trigger or {}))  # type: ignore[arg-type]


def fail(
    log: Log, step: str, *, kind: str = "retryable", error_type: str = "http_503"
) -> list[str]:
    return log.send(
        FailStep(
            run_id=RUN,
            step=step,
            attempt_id=log.attempt(step),
            error_kind=kind,  # type: ignore[arg-type]
            error_type=error_type,
            message="boom",
        ),
        at=T0,
    )


# --- backoff -----------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered_by_attempt_id() -> None:
    policy = RetryPolicy(backoff=SECOND, multiplier=2.0, max_backoff=10 * SECOND, jitter=0.25)
    waits = [backoff(policy, n, f"attempt-{n}") for n in range(1, 8)]
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling * 0.75 * SECOND <= wait <= ceiling * SECOND
    # deterministic: the same attempt id always waits the same; another id differs
    assert backoff(policy, 3, "x") == backoff(policy, 3, "x")
    assert backoff(policy, 3, "x") != backoff(policy, 3, "y")


def test_no_jitter_gives_the_exact_exponential() -> None:
    policy = RetryPolicy(backoff=2 * SECOND, multiplier=3.0, max_backoff=60 * SECOND, jitter=0)
    assert [backoff(policy, n, "a").total_seconds() for n in (1, 2, 3, 4)] == [2, 6, 18, 54]


# --- retries -----------------------------------------------------------------

RETRYING = "  a: {action: http, retry: {max_attempts: 3, backoff: 10s, jitter: 0}}\n"


def test_a_retry_waits_for_its_timer_and_fires_once() -> None:
    log = story(RETRYING)
    begin(log)
    assert fail(log, "a") == ["step.failed", "timer.scheduled"]
    (timer_id, timer) = next(iter(log.run.timers.items()))
    assert (timer.kind, timer.step, timer.attempt) == ("retry", "a", 2)
    assert timer.fire_at == T0 + 10 * SECOND
    assert timer_id == ids.timer_id(RUN, "retry", "a", 2)
    fire = FireTimer(
        run_id=RUN, timer_id=timer_id, kind="retry", step="a", attempt=2, fire_at=timer.fire_at
    )
    early = log.send(fire, at=T0 + 9 * SECOND)
    assert early == ["command.rejected"]
    assert "not before" in str(log.envelopes[-1].data["reason"])
    assert log.send(fire, at=T0 + 10 * SECOND) == ["timer.fired", "step.dispatched"]
    assert log.run.steps["a"].attempt == 2
    assert log.run.timers == {}
    # a resent FireTimer (after a crash) changes nothing
    assert log.send(fire, at=T0 + 11 * SECOND) == ["command.rejected"]
    assert "not pending" in str(log.envelopes[-1].data["reason"])
    assert log.run.steps["a"].attempt == 2


def test_retry_waits_grow_exponentially() -> None:
    log = story(RETRYING)
    begin(log)
    fail(log, "a")
    first = next(iter(log.run.timers.values())).fire_at
    fire_due(log, first)
    fail(log, "a")
    second = next(iter(log.run.timers.values())).fire_at
    assert (first - T0, second - T0) == (10 * SECOND, 20 * SECOND)


def test_only_listed_error_types_retry() -> None:
    log = story("  a: {action: http, retry: {max_attempts: 3, retry_on: [http_503]}}\n")
    begin(log)
    assert fail(log, "a", error_type="http_429") == ["step.failed", "run.failed"]
    log = story("  a: {action: http, retry: {max_attempts: 3, retry_on: [http_503]}}\n")
    begin(log)
    assert fail(log, "a", error_type="http_503") == ["step.failed", "timer.scheduled"]


def test_zero_backoff_retries_at_once() -> None:
    log = story("  a: {action: http, retry: {max_attempts: 2, backoff: 0s}}\n")
    begin(log)
    assert fail(log, "a") == ["step.failed", "step.dispatched"]


# --- step and run timeouts ---------------------------------------------------

TIMED = "  a: {action: http, timeout: 30s, retry: {max_attempts: 2, backoff: 5s, jitter: 0}}\n"


def test_a_step_timeout_fails_the_attempt_and_retries() -> None:
    log = story(TIMED)
    assert begin(log) == ["run.started", "step.dispatched", "timer.scheduled"]
    first = log.attempt("a")
    out = fire_due(log, T0 + 30 * SECOND)
    assert out == ["timer.fired", "step.failed", "timer.scheduled"]
    failed = log.envelopes[-2].data
    assert (failed["error_type"], failed["will_retry"]) == ("step_timeout", True)
    # the late answer of the timed-out attempt is rejected
    late = CompleteStep(run_id=RUN, step="a", attempt_id=first)
    assert log.send(late, at=T0 + 31 * SECOND) == ["command.rejected"]
    assert fire_due(log, T0 + 35 * SECOND) == [
        "timer.fired",
        "step.dispatched",
        "timer.scheduled",  # the second attempt's own timeout
    ]
    assert fire_due(log, T0 + 65 * SECOND) == ["timer.fired", "step.failed", "run.failed"]
    assert log.run.status is RunStatus.FAILED
    assert log.run.timers == {}


def test_an_answer_in_time_makes_the_timeout_moot() -> None:
    log = story(TIMED)
    begin(log)
    (timer_id, timer) = next(iter(log.run.timers.items()))
    log.send(CompleteStep(run_id=RUN, step="a", attempt_id=log.attempt("a")), at=T0 + SECOND)
    assert log.run.status is RunStatus.SUCCEEDED
    assert log.run.timers == {}
    stale = FireTimer(
        run_id=RUN, timer_id=timer_id, kind=timer.kind, step="a", attempt=1, fire_at=timer.fire_at
    )
    assert log.send(stale, at=T0 + 30 * SECOND) == ["command.rejected"]


def test_a_run_timeout_fails_the_run_and_clears_its_timers() -> None:
    log = story("  a: {action: http, timeout: 1h}\n", extra="timeout: 10m\n")
    assert begin(log) == ["run.started", "timer.scheduled", "step.dispatched", "timer.scheduled"]
    assert len(log.run.timers) == 2
    out = fire_due(log, T0 + timedelta(minutes=10))
    assert out == ["timer.fired", "run.failed"]
    assert "timed out" in str(log.envelopes[-1].data["reason"])
    assert log.run.timers == {}
    late = CompleteStep(run_id=RUN, step="a", attempt_id=log.attempt("a"))
    assert log.send(late, at=T0 + timedelta(minutes=11)) == ["command.rejected"]


# --- delays ------------------------------------------------------------------


def test_a_delay_for_waits_durably_then_the_story_goes_on() -> None:
    log = story("  wait: {delay: {for: 10m}}\n  a: {needs: [wait], action: http}\n")
    assert begin(log) == ["run.started", "timer.scheduled"]
    assert log.run.steps["wait"].status is StepStatus.DELAYED
    assert fire_due(log, T0 + timedelta(minutes=9)) == []
    assert fire_due(log, T0 + timedelta(minutes=10)) == [
        "timer.fired",
        "step.succeeded",
        "step.dispatched",
    ]
    assert log.run.steps["wait"].output == {
        "waited_until": (T0 + timedelta(minutes=10)).isoformat()
    }


def test_a_delay_until_a_time_from_the_event() -> None:
    log = story('  wait: {delay: {until: "{{ event.at }}"}}\n')
    begin(log, {"at": (T0 + timedelta(hours=2)).isoformat()})
    assert next(iter(log.run.timers.values())).fire_at == T0 + timedelta(hours=2)


def test_a_delay_until_the_past_is_over_at_once() -> None:
    log = story('  wait: {delay: {until: "{{ event.at }}"}}\n')
    out = begin(log, {"at": (T0 - timedelta(hours=2)).isoformat()})
    assert out == ["run.started", "step.succeeded", "run.succeeded"]


@pytest.mark.parametrize("value", ["tomorrow", "2026-11-25T10:00:00"])
def test_a_bad_delay_until_fails_the_step_with_the_reason(value: str) -> None:
    log = story('  wait: {delay: {until: "{{ event.at }}"}}\n')
    out = begin(log, {"at": value})
    assert out == ["run.started", "step.failed", "run.failed"]
    assert "delay until" in str(log.envelopes[1].data["message"])


# --- approval deadlines ------------------------------------------------------

GATE = (
    "  ok:\n    approval: {approvers: [alice], timeout: 24h, on_timeout: %s}\n"
    "  act: {needs: [ok], action: http}\n"
)


def test_an_approval_deadline_denies_and_closes_the_gate() -> None:
    log = story(GATE % "deny")
    assert begin(log) == ["run.started", "approval.requested", "timer.scheduled"]
    out = fire_due(log, T0 + timedelta(hours=24))
    assert out == ["timer.fired", "approval.denied", "step.skipped", "run.failed"]
    assert log.envelopes[-3].data["approver"] == "baton/timeout"
    assert log.last_tasks[0].envelope.data["outcome"] == "expired"  # ADR 0410
    # a decision after the deadline finds the gate closed
    gate = ids.gate_id(RUN, "ok")
    late = DecideApproval(run_id=RUN, gate_id=gate, decision="approve", approver="alice")
    assert log.send(late, at=T0 + timedelta(hours=25)) == ["command.rejected"]


def test_an_approval_deadline_may_approve() -> None:
    log = story(GATE % "approve")
    begin(log)
    out = fire_due(log, T0 + timedelta(hours=24))
    assert out == ["timer.fired", "approval.granted", "step.dispatched"]


def test_a_decision_in_time_cancels_the_deadline() -> None:
    log = story(GATE % "deny")
    begin(log)
    gate = ids.gate_id(RUN, "ok")
    log.send(DecideApproval(run_id=RUN, gate_id=gate, decision="approve", approver="alice"))
    assert log.run.timers == {}


# --- replay ------------------------------------------------------------------


def test_pending_timers_are_rebuilt_from_the_log() -> None:
    log = story(
        "  wait: {delay: {for: 1h}}\n" + TIMED.replace("  a: {", "  a: {needs: [wait], "),
        extra="timeout: 1d\n",
    )
    begin(log)
    fire_due(log, T0 + timedelta(hours=1))
    assert {t.kind for t in log.run.timers.values()} == {"run_timeout", "step_timeout"}
    assert replay(log.envelopes) == log.state
    assert verify_chain(log.envelopes) is None


# --- story validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{delay: {for: 1m, until: x}}", "exactly one of `for` or `until`"),
        ("{delay: {}}", "exactly one of `for` or `until`"),
        ("{delay: {for: 1m}, action: http}", "exactly one of `action` or `approval`"),
        ("{approval: {approvers: [a]}, timeout: 1m}", "`timeout` is for action steps"),
        ("{action: http, retry: {backoff: 10m, max_backoff: 1m}}", "backoff <= max_backoff"),
        ("{action: http, timeout: soon}", "not a duration"),
    ],
)
def test_timed_steps_are_validated(step: str, message: str) -> None:
    with pytest.raises(StoryError, match=message.replace("(", r"\(")):
        parse_story(f"id: s\nversion: 1\ntrigger: {{webhook: {{path: p}}}}\nsteps:\n  a: {step}\n")


def test_timed_stories_survive_the_json_round_trip_of_baton_stories() -> None:
    text = (
        "id: s\nversion: 1\ntimeout: 1d\n"
        "trigger: {webhook: {path: p}, dedup: {key: k, window: 90s}}\nsteps:\n"
        "  w: {delay: {for: 1500ms}}\n"
        "  a: {action: http, timeout: 10m, retry: {backoff: 2s, max_backoff: 1h}}\n"
        "  g: {approval: {approvers: [x], timeout: 24h}}\n"
    )
    story = parse_story(text)
    dumped = story.model_dump_json(by_alias=True)
    assert '"window":"90s"' in dumped
    assert type(story).model_validate_json(dumped) == story
