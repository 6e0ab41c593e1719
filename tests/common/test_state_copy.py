"""``evolve``'s state copies (and the scheduler's traced envelope) are what
``model_copy(update=...)`` gives."""

from __future__ import annotations

from datetime import UTC, datetime

from baton_common.envelope import Envelope
from baton_common.events import RunStarted, StepDispatched, StepSucceeded
from baton_common.state import _PENDING_STEP, RunState, StepState, StepStatus, evolve
from baton_common.trusted import replaced

T = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def started() -> RunState:
    event = RunStarted(run_id="r", story_id="s", story_version=1, trigger={"n": 1})
    return evolve(None, event, seq=1, hash="h1", time=T)


def test_replaced_is_model_copy() -> None:
    state = started()
    update: dict[str, object] = {"seq": 2, "last_hash": "h2", "succeeded": ["a"]}
    copied = replaced(state, update)
    expected = state.model_copy(update=update)
    assert copied == expected
    assert copied.model_fields_set == expected.model_fields_set
    assert copied.model_dump() == expected.model_dump()
    assert state.seq == 1
    assert state.succeeded == []
    step = replaced(StepState(), {"status": StepStatus.DISPATCHED, "attempt": 1})
    assert step == StepState().model_copy(update={"status": StepStatus.DISPATCHED, "attempt": 1})
    assert step.model_fields_set == {"status", "attempt"}
    envelope = Envelope(id="c", type="t", source="s", time=T, data={"run_id": "r"})
    traced = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    expected_envelope = envelope.model_copy(update=traced)
    assert replaced(envelope, traced) == expected_envelope
    assert replaced(envelope, traced).model_fields_set == expected_envelope.model_fields_set
    assert envelope.traceparent is None


def test_evolve_leaves_earlier_states_and_other_runs_steps_alone() -> None:
    first = started()
    dispatched = StepDispatched(
        run_id="r", step="a", attempt=1, attempt_id="x", action="http", input={}, queue="q"
    )
    second = evolve(first, dispatched, seq=2, hash="h2", time=T)
    third = evolve(
        second,
        StepSucceeded(run_id="r", step="a", attempt=1, attempt_id="x", output={"ok": 1}),
        seq=3,
        hash="h3",
        time=T,
    )
    other = evolve(started(), dispatched, seq=2, hash="h2", time=T)
    assert first.steps == {}
    assert first.seq == 1
    assert second.steps["a"].status is StepStatus.DISPATCHED
    assert third.steps["a"].status is StepStatus.SUCCEEDED
    assert third.succeeded == ["a"]
    assert other.steps["a"] == second.steps["a"]
    assert other.steps["a"].output is None
    assert _PENDING_STEP == StepState()
    assert not _PENDING_STEP.model_fields_set


def test_the_first_state_is_the_validated_one() -> None:
    events = [
        RunStarted(run_id="r", story_id="s", story_version=1, trigger={"n": [1, 2.5, None]}),
        RunStarted(
            run_id="r",
            story_id="s",
            story_version=3,
            trigger={"alert": {"id": "A-1"}},
            dedup_key="k",
            dedup_until="2026-12-01T00:00:00Z",
            ingest_id="i",
            dedup_slot="slot",
            parent_run_id="p",
            parent_step="call",
            parent_attempt_id="pa",
            initiator="alice",
        ),
    ]
    for event in events:
        state = evolve(None, event, seq=1, hash="h1", time=T)
        # the state's fields the event carries, as validation takes them
        carried = {
            n: getattr(event, n) for n in RunState.model_fields if n in type(event).model_fields
        }
        expected = RunState(**carried, steps={}, started_at=T, seq=1, last_hash="h1")
        assert state == expected
        assert state.model_fields_set == expected.model_fields_set
        assert list(state.__dict__) == list(expected.__dict__)
        assert state.model_dump_json() == expected.model_dump_json()
        assert RunState.model_validate(state.model_dump()) == state
