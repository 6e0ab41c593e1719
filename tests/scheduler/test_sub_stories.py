"""Sub-stories: a story step starts a child run by command; its outcome comes back as one."""

from __future__ import annotations

import pytest
from scheduler_log import RUN, Log

from baton_common import ids
from baton_common.commands import COMMAND_ADAPTER, Command, CompleteStep, FailStep, StartRun
from baton_common.state import RunStatus
from baton_common.story import StoryError, parse_story

PARENT = parse_story(
    """
id: parent
version: 1
trigger: {webhook: {path: p}}
steps:
  enrich:
    story: {id: child}
    with: {host: "{{ event.host }}"}
  act:
    needs: [enrich]
    action: http
    with: {url: "http://act/{{ steps.enrich.output.steps.lookup.ip }}"}
"""
)
CHILD = parse_story(
    """
id: child
version: 3
trigger: {webhook: {path: c}}
inputs: {host: {required: true}}
steps:
  lookup: {action: http, with: {url: "http://dns/{{ event.host }}"}}
"""
)


def commands_from(log: Log) -> list[Command]:
    """The cross-run commands the last decision wrote to baton.commands."""
    return [
        COMMAND_ADAPTER.validate_python(t.envelope.data)
        for t in log.last_tasks
        if t.topic == "baton.commands"
    ]


def call(host: object) -> tuple[Log, Log, str]:
    parent = Log(PARENT)
    parent.send(StartRun(run_id=RUN, story_id="parent", trigger={"host": host}))  # type: ignore[dict-item]
    (start,) = commands_from(parent)
    assert isinstance(start, StartRun)
    child = Log(CHILD)
    child.run_id = start.run_id
    child.send(start)
    return parent, child, start.run_id


def test_a_child_run_is_started_by_command_and_its_result_continues_the_parent() -> None:
    parent, child, child_id = call("example.org")
    attempt = parent.attempt("enrich")
    assert child_id == ids.run_id_for("child", f"parent:{attempt}")
    assert child.run.story_version == 3
    assert (child.run.parent_run_id, child.run.parent_step) == (RUN, "enrich")
    assert child.last_tasks[0].envelope.data["input"] == {"url": "http://dns/example.org"}
    child.send(
        CompleteStep(
            run_id=child_id,
            step="lookup",
            attempt_id=child.attempt("lookup"),
            output={"ip": "1.2.3.4"},
        )
    )
    assert child.run.status is RunStatus.SUCCEEDED
    (result,) = commands_from(child)
    assert isinstance(result, CompleteStep)
    assert (result.run_id, result.step, result.attempt_id) == (RUN, "enrich", attempt)
    assert parent.send(result) == ["step.succeeded", "step.dispatched"]
    assert parent.last_tasks[0].envelope.data["input"] == {"url": "http://act/1.2.3.4"}


def test_a_failed_child_fails_the_calling_step() -> None:
    parent, child, child_id = call("example.org")
    child.send(
        FailStep(
            run_id=child_id,
            step="lookup",
            attempt_id=child.attempt("lookup"),
            error_kind="permanent",
            error_type="http_404",
            message="no such host",
        )
    )
    (failure,) = commands_from(child)
    assert isinstance(failure, FailStep)
    assert failure.error_type == "child_run_failed"
    assert parent.send(failure)[-1] == "run.failed"
    assert "no such host" in str(parent.envelopes[-1].data["reason"])


def test_inputs_are_checked_against_the_called_story_and_a_rejection_fails_the_caller() -> None:
    parent = Log(PARENT.model_copy(update={"steps": {**PARENT.steps}}))
    bad = PARENT.steps["enrich"].model_copy(update={"with_": {"hostname": "x"}})
    parent.story = PARENT.model_copy(update={"steps": {"enrich": bad}})
    parent.send(StartRun(run_id=RUN, story_id="parent", trigger={}))
    (start,) = commands_from(parent)
    child = Log(CHILD)
    child.run_id = start.run_id
    assert child.send(start) == ["command.rejected"]
    reason = str(child.envelopes[-1].data["reason"])
    assert "missing input host" in reason
    assert "unknown input hostname" in reason
    (failure,) = commands_from(child)
    assert isinstance(failure, FailStep)
    assert failure.error_type == "child_run_rejected"
    assert parent.send(failure)[-1] == "run.failed"


def test_a_story_step_is_its_own_kind() -> None:
    with pytest.raises(StoryError, match="exactly one of"):
        parse_story(
            "id: s\nversion: 1\ntrigger: {webhook: {path: p}}\nsteps:\n"
            "  a: {story: {id: x}, action: http}\n"
        )
