"""The command of an attempt, built without revalidating its output, is the validated one:
the same model, the same envelope (without validating its attributes again) and the same
record bytes (``to_envelope`` and ``outbound``, the general codec)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from baton_common.commands import CompleteStep, FailStep
from baton_common.envelope import Envelope, encode_record
from baton_common.kafka import outbound, to_envelope
from baton_common.telemetry import current_traceparent
from baton_common.trusted import json_types_only
from baton_executor.execution import command_envelope, command_record, completed

from .tasks import step_task

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CAUSE = Envelope(id="task-1", type="baton.task.step.v1", source="baton/scheduler", time=NOW)

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
outputs = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def reference_envelope(command: CompleteStep | FailStep, cause: Envelope) -> Envelope:
    """What the executor built before: a validated envelope of the command."""
    task = step_task()
    return to_envelope(
        command,
        id="cmd-1",
        source="baton/executor",
        time=NOW,
        subject=task.run_id,
        storyid=task.story_id,
        storyversion=task.story_version,
        actor="baton/executor",
        correlationid=cause.correlationid,
        causationid=cause.id,
        traceparent=current_traceparent(cause.traceparent),
    )


def assert_written_as_before(command: CompleteStep | FailStep, cause: Envelope = CAUSE) -> None:
    task = step_task()
    reference = reference_envelope(command, cause)
    expected = outbound("cmds", task.run_id, reference)  # encoded by the general codec
    envelope = command_envelope(command, task, cause, id="cmd-1", time=NOW)
    assert envelope == reference
    assert envelope.model_fields_set == reference.model_fields_set
    assert encode_record(envelope) == (expected.value, expected.headers)
    written = command_record(command, task, cause, topic="cmds", id="cmd-1", time=NOW)
    assert written == expected


@given(outputs)
def test_a_json_output_gives_the_validated_command_and_its_bytes(output: Any) -> None:
    task = step_task()
    command = completed(task, output)

    reference = CompleteStep(
        run_id=task.run_id, step=task.step, attempt_id=task.attempt_id, output=output
    )
    assert command == reference
    assert command.model_fields_set == reference.model_fields_set
    assert_written_as_before(command)


CAUSES = st.builds(
    Envelope,
    id=st.text(min_size=1),
    type=st.just("baton.task.step.v1"),
    source=st.just("baton/scheduler"),
    time=st.just(NOW),
    correlationid=st.none() | st.text(),
    traceparent=st.none()
    | st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    | st.text(max_size=8),
)


@given(
    CAUSES,
    st.sampled_from(["retryable", "permanent"]),
    st.text(),
    st.none() | st.integers(min_value=100, max_value=599),
    st.none() | st.floats(min_value=0, max_value=86400),
)
def test_a_failure_and_any_cause_give_the_validated_envelope_and_its_bytes(
    cause: Envelope, kind: Any, message: str, status: int | None, retry_after: float | None
) -> None:
    task = step_task()
    command = FailStep(
        run_id=task.run_id,
        step=task.step,
        attempt_id=task.attempt_id,
        error_kind=kind,
        error_type="http_503",
        message=message,
        attempt=task.attempt,
        http_status=status,
        retry_after_seconds=retry_after,
    )
    assert_written_as_before(command, cause)


def test_an_output_with_non_finite_floats_takes_the_general_codec() -> None:
    task = step_task()
    command = CompleteStep(
        run_id=task.run_id, step=task.step, attempt_id=task.attempt_id, output={"x": math.nan}
    )
    assert_written_as_before(command)


def test_values_beyond_json_types_take_the_validated_road() -> None:
    assert json_types_only({"a": [1, 2.5, "x", None, True, {"b": {}}]})
    assert not json_types_only({1: "integer key"})
    assert not json_types_only([math.nan])
    assert not json_types_only({"a": ("tuple",)})
    not_json: Any = {"a": ("tuple",)}
    with pytest.raises(ValidationError, match="not a valid JSON value"):
        completed(step_task(), not_json)  # refused, as before
