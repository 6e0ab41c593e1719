"""Property: replaying any generated run's log reproduces its state, and the log is a chain.

Hypothesis drives a run of a story using every engine feature (fan-out, ``if``, joins,
for_each, retries, timeouts, delays, approval deadlines, compensation) with arbitrary
interleavings of results, failures, timer fires, decisions, cancels and stale or
duplicate commands, at arbitrary times.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue
from scheduler_log import RUN, T0, Log

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
from baton_common.envelope import decode_record, encode_record
from baton_common.hashing import verify_chain
from baton_common.state import StepStatus, replay
from baton_common.story import parse_story

STORY = parse_story(
    """
id: prop
version: 1
timeout: 1h
trigger: {webhook: {path: p}}
on_failure: {action: http}
steps:
  fetch:
    action: http
    timeout: 30s
    retry: {max_attempts: 3, backoff: 1s}
    compensate: {action: http, retry: {max_attempts: 2, backoff: 2s}}
  a: {needs: [fetch], if: "steps.fetch.output.go", action: http, compensate: {action: http}}
  b:
    needs: [fetch]
    for_each: steps.fetch.output.items
    max_items: 3
    action: http
    with: {n: "{{ item }}"}
    retry: {max_attempts: 2, backoff: 0s}
  wait: {needs: [fetch], delay: {for: 5m}}
  join: {needs: [a, b, wait], join: any, action: http}
  gate:
    needs: [join]
    approval:
      approvers: [alice, mallory, bob]
      required: 2
      timeout: 1h
      on_timeout: escalate
      escalate_to: [carol]
      remind_before: 10m
      require_comment_on_deny: true
  last: {needs: [gate], action: http}
"""
)


def choices(log: Log) -> list[str]:
    state = log.run
    options = ["stale", "dup_start", "cancel"]
    if any(s.status is StepStatus.DISPATCHED and s.attempt_id for s in state.steps.values()):
        options += ["complete", "complete", "fail"]
    if state.timers:
        options += ["fire", "fire"]
    if any(s.status is StepStatus.WAITING for s in state.steps.values()):
        options.append("decide")
    return options


def next_command(data: st.DataObject, log: Log) -> Command:
    state = log.run
    kind = data.draw(st.sampled_from(choices(log)))
    dispatched = sorted(
        n for n, s in state.steps.items() if s.status is StepStatus.DISPATCHED and s.attempt_id
    )
    if kind in {"complete", "fail"}:
        name = data.draw(st.sampled_from(dispatched))
        attempt = state.steps[name].attempt_id or ""
        if kind == "complete":
            output: JsonValue = {"ok": True}
            if name == "fetch":
                items: list[JsonValue] = [*data.draw(st.lists(st.integers(0, 9), max_size=4))]
                output = {"go": data.draw(st.booleans()), "items": items}
            return CompleteStep(run_id=RUN, step=name, attempt_id=attempt, output=output)
        return FailStep(
            run_id=RUN,
            step=name,
            attempt_id=attempt,
            error_kind=data.draw(st.sampled_from(["retryable", "permanent"])),
            error_type="http_503",
            message="failed",
        )
    if kind == "fire":
        timer_id = data.draw(st.sampled_from(sorted(state.timers)))
        timer = state.timers[timer_id]
        return FireTimer(
            run_id=RUN,
            timer_id=timer_id,
            kind=timer.kind,
            step=timer.step,
            attempt=timer.attempt,
            fire_at=timer.fire_at,
        )
    if kind == "decide":
        return DecideApproval(
            run_id=RUN,
            gate_id=ids.gate_id(RUN, "gate"),
            decision=data.draw(st.sampled_from(["approve", "deny"])),
            approver=data.draw(st.sampled_from(["alice", "mallory", "bob", "carol", "zed"])),
            comment=data.draw(st.sampled_from([None, "why"])),
        )
    if kind == "cancel":
        return CancelRun(
            run_id=RUN, reason="ops", requested_by="op", compensate=data.draw(st.booleans())
        )
    if kind == "dup_start":
        return StartRun(run_id=RUN, story_id="prop", trigger={})
    return CompleteStep(run_id=RUN, step="fetch", attempt_id="not-an-attempt")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replaying_a_generated_log_reproduces_the_run(data: st.DataObject) -> None:
    log = Log(STORY)
    now = T0
    log.send(StartRun(run_id=RUN, story_id="prop", trigger={}), at=now)
    sent: list[tuple[Command, object]] = []
    for _ in range(data.draw(st.integers(1, 40))):
        if log.run.finished:
            break
        command = next_command(data, log)
        now += timedelta(seconds=data.draw(st.integers(0, 900)))
        if isinstance(command, FireTimer) and now < command.fire_at:
            now = command.fire_at if data.draw(st.booleans()) else now  # sometimes early
        log.send(command, at=now)
        sent.append((command, now))
    # the property: the log alone, as Kafka carries it, gives back the scheduler's state
    wire = [decode_record(*encode_record(e)) for e in log.envelopes]
    assert replay(wire) == log.state
    assert verify_chain(wire) is None
    state = log.run
    assert state.seq == len(wire)
    assert not (state.finished and state.timers)  # a finished run holds no timers
    for timer in state.timers.values():  # every pending timer guards something pending
        if timer.kind in {"step_timeout", "retry"} and timer.step is not None:
            assert state.steps[timer.step].status in {StepStatus.DISPATCHED, StepStatus.PENDING}
    # and deciding the same commands again gives byte-identical records
    again = Log(STORY)
    again.send(StartRun(run_id=RUN, story_id="prop", trigger={}), at=T0)
    for command, at in sent:
        again.send(command, at=at)  # type: ignore[arg-type]
    assert [e.model_dump() for e in again.envelopes] == [e.model_dump() for e in log.envelopes]
