"""The command of a successful attempt, built without revalidating its output, is the
validated one: the same model, the same record bytes (``encode_record``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from baton_common.commands import CompleteStep
from baton_common.envelope import Envelope, encode_record
from baton_common.kafka import to_envelope
from baton_executor.execution import command_envelope, completed, json_types_only

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


def validated_record(output: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
    """What the executor wrote before: a validated command, dumped in full."""
    task = step_task()
    command = CompleteStep(
        run_id=task.run_id, step=task.step, attempt_id=task.attempt_id, output=output
    )
    envelope = to_envelope(
        command,
        id="cmd-1",
        source="baton/executor",
        time=NOW,
        subject=task.run_id,
        storyid=task.story_id,
        storyversion=task.story_version,
        actor="baton/executor",
        correlationid=CAUSE.correlationid,
        causationid=CAUSE.id,
        traceparent=None,
    )
    return encode_record(envelope)


@given(outputs)
def test_a_json_output_gives_the_validated_command_and_its_bytes(output: Any) -> None:
    task = step_task()
    command = completed(task, output)

    reference = CompleteStep(
        run_id=task.run_id, step=task.step, attempt_id=task.attempt_id, output=output
    )
    assert command == reference
    assert command.model_fields_set == reference.model_fields_set
    envelope = command_envelope(command, task, CAUSE, id="cmd-1", time=NOW)
    assert encode_record(envelope) == validated_record(output)


def test_values_beyond_json_types_take_the_validated_road() -> None:
    assert json_types_only({"a": [1, 2.5, "x", None, True, {"b": {}}]})
    assert not json_types_only({1: "integer key"})
    assert not json_types_only([math.nan])
    assert not json_types_only({"a": ("tuple",)})
    not_json: Any = {"a": ("tuple",)}
    with pytest.raises(ValidationError, match="not a valid JSON value"):
        completed(step_task(), not_json)  # refused, as before
