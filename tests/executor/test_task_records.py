"""A task record read by the shorter road gives what validation gives: the same task
(fields-set included), and the same rejection, with the same reason, for near misses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from baton_common.envelope import Envelope, encode_record
from baton_common.records import StepTask
from baton_executor.task_records import TaskRejected, read_task, step_task_of

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what orjson writes

json_values = st.recursive(
    st.none() | st.booleans() | I64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)
# Values of each field's type, and near misses of other types.
near_misses = st.none() | st.booleans() | I64 | st.floats() | st.text() | st.lists(I64, max_size=2)
USUAL: dict[str, Any] = {
    "run_id": "r-1",
    "story_id": "s",
    "story_version": 3,
    "step": "lookup",
    "attempt": 1,
    "attempt_id": "a-1",
    "action": "http",
    "input": {"url": "http://x"},
}


@st.composite
def task_data(draw: st.DrawFn) -> dict[str, Any]:
    data = dict(USUAL)
    data["input"] = draw(st.dictionaries(st.text(), json_values, max_size=4))
    if draw(st.booleans()):
        data["type"] = draw(st.sampled_from(["baton.task.step.v1", "baton.task.other.v1"]))
    if draw(st.booleans()):
        data["policy"] = draw(st.none() | st.just({"limits": []}) | st.just({"limits": 1}))
    for name in draw(st.sets(st.sampled_from(sorted(USUAL)), max_size=2)):
        if draw(st.booleans()):
            del data[name]
        else:
            data[name] = draw(near_misses | json_values)
    if draw(st.integers(0, 9)) == 0:
        data["unknown"] = 1
    return data


def validated(data: dict[str, Any]) -> StepTask | str:
    try:
        return StepTask.model_validate(data)
    except ValidationError as exc:
        return str(exc)


def shortened(data: dict[str, Any]) -> StepTask | str:
    try:
        return step_task_of(data, parsed_strictly=True)
    except ValidationError as exc:
        return str(exc)


@settings(max_examples=400, deadline=None)
@given(task_data())
def test_the_shorter_road_gives_what_validation_gives(data: dict[str, Any]) -> None:
    parsed = orjson.loads(orjson.dumps(data))  # what a strictly parsed record holds
    expected, got = validated(parsed), shortened(parsed)
    assert got == expected
    if isinstance(expected, StepTask):
        assert isinstance(got, StepTask)
        assert got.model_fields_set == expected.model_fields_set
        assert got.model_dump(mode="json") == expected.model_dump(mode="json")


def record_of(data: dict[str, Any], type: str = "baton.task.step.v1") -> tuple[bytes, Any]:
    envelope = Envelope(id="t-1", type=type, source="baton/scheduler", time=NOW, data=data)
    return encode_record(envelope)


def test_a_usual_record_reads_as_its_validated_task() -> None:
    envelope, task = read_task(*record_of(USUAL))
    assert task == StepTask.model_validate(USUAL)
    assert (envelope.id, envelope.type) == ("t-1", "baton.task.step.v1")


def test_a_record_parsed_by_the_standard_library_is_validated() -> None:
    value, headers = record_of(USUAL)
    huge = value.replace(b'"attempt":1', b'"attempt":1' + b"0" * 20)  # beyond orjson
    _, task = read_task(huge, headers)
    assert task.attempt == 10**20
    nan = value.replace(b'"url":"http://x"', b'"url":"http://x","n":NaN')
    _, task = read_task(nan, headers)
    assert task.input["url"] == "http://x"


def test_records_that_are_not_step_tasks_are_rejected_with_a_reason() -> None:
    with pytest.raises(TaskRejected) as rejected:
        read_task(b"{}", [])
    assert rejected.value.reason == "not_cloudevent"
    with pytest.raises(TaskRejected) as rejected:
        read_task(*record_of(USUAL, type="baton.task.gate-opened.v1"))
    assert rejected.value.reason == "not_step_task"
    with pytest.raises(TaskRejected) as rejected:
        read_task(*record_of({**USUAL, "attempt": "one"}))
    assert rejected.value.reason == "not_step_task"
    assert rejected.value.detail.startswith("invalid StepTask: attempt:")
