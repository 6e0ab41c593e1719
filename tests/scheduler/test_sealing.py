"""The journal's records of data the fast path cannot vouch for are the general path's.

``Log`` checks every event and task against ``hashing.sealed``, ``to_envelope`` and
``encode_record``; these tests feed it the values that take the general path (ADR 0170).
"""

from __future__ import annotations

import pytest
from scheduler_log import RUN, TRIGGER, Log, start

from baton_common.commands import CompleteStep, StartRun
from baton_common.events import StepDispatched, StepSucceeded
from baton_common.hashing import plain_json
from baton_common.policy import StepGrant
from baton_common.story import parse_story
from baton_scheduler.sealing import model_data

# orjson spells 1e-05 otherwise than the standard library; it refuses 2**70; NaN and
# infinities it writes as null
AWKWARD = [1e-05, 2**70, float("inf"), 0.1, 1.5e300, -0.0]


@pytest.mark.parametrize("value", AWKWARD)
def test_an_output_the_fast_path_cannot_write_is_recorded_as_the_general_path_records_it(
    value: float,
) -> None:
    log = Log()
    start(log)
    out = log.send(
        CompleteStep(
            run_id=RUN,
            step="lookup",
            attempt_id=log.attempt("lookup"),
            output={"status": 200, "v": value, "nested": [{"v": value}]},
        )
    )
    assert out[0] == "step.succeeded"


FLOATY = parse_story(
    """
id: floaty
version: 1
trigger: {webhook: {path: floaty}}
steps:
  a: {action: http, with: {v: "{{ event.v }}", fixed: 1e-05}}
"""
)


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_trigger_and_input_are_recorded_as_the_general_path_records_them(
    value: float,
) -> None:
    log = Log(FLOATY)
    out = log.send(StartRun(run_id=RUN, story_id="floaty", trigger={**TRIGGER, "v": value}))
    assert out == ["run.started", "step.dispatched"]
    assert [t.record is not None for t in log.last_tasks] == [True]


def test_model_data_is_the_dump_and_says_when_it_is_not_plain() -> None:
    plain = StepSucceeded(run_id="r", step="s", attempt=1, attempt_id="a", output={"n": [1]})
    assert model_data(plain) == (plain.model_dump(mode="json"), True)
    odd = StepSucceeded(run_id="r", step="s", attempt=1, attempt_id="a", output={"n": 1e-05})
    data, is_plain = model_data(odd)
    assert data == odd.model_dump(mode="json")
    assert not is_plain
    assert not plain_json(data)


def test_model_data_dumps_a_nested_model() -> None:
    event = StepDispatched(
        run_id="r",
        step="s",
        attempt=1,
        attempt_id="a",
        action="http",
        queue="default",
        input={},
        policy=StepGrant(limits=[]),
    )
    data, is_plain = model_data(event)
    assert data == event.model_dump(mode="json")
    assert data["policy"] == {"limits": []}
    assert is_plain
