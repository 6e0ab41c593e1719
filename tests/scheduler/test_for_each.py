"""for_each: explode a list into child steps, then implode their outputs in order."""

from __future__ import annotations

import pytest
from scheduler_log import RUN, Log

from baton_common.commands import CompleteStep, FailStep, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, replay
from baton_common.story import StoryError, parse_story

STORY = """
id: fan
version: 1
trigger: {webhook: {path: f}}
steps:
  scan:
    for_each: event.hosts
    max_items: %d
    action: http
    with: {url: "http://scanner/{{ item }}?n={{ index }}"}
    retry: {max_attempts: 2, backoff: 0s}
  report:
    needs: [scan]
    action: http
    with: {json: {results: "{{ steps.scan.output }}"}}
"""


def begin(hosts: object, cap: int = 10) -> tuple[Log, list[str]]:
    log = Log(parse_story(STORY % cap))
    out = log.send(StartRun(run_id=RUN, story_id="fan", trigger={"hosts": hosts}))  # type: ignore[dict-item]
    return log, out


def complete(log: Log, step: str, output: str) -> list[str]:
    return log.send(
        CompleteStep(run_id=RUN, step=step, attempt_id=log.attempt(step), output=output)
    )


def test_items_run_in_parallel_and_outputs_come_back_in_item_order() -> None:
    log, out = begin(["a", "b", "c"])
    assert out == ["run.started", "step.exploded"] + ["step.dispatched"] * 3
    urls = [t.envelope.data["input"]["url"] for t in log.last_tasks]  # type: ignore[index,call-overload]
    assert urls == ["http://scanner/a?n=0", "http://scanner/b?n=1", "http://scanner/c?n=2"]
    assert complete(log, "scan[2]", "C") == ["step.succeeded"]
    assert complete(log, "scan[0]", "A") == ["step.succeeded"]
    assert complete(log, "scan[1]", "B") == ["step.succeeded", "step.succeeded", "step.dispatched"]
    assert log.run.steps["scan"].output == ["A", "B", "C"]
    assert log.last_tasks[0].envelope.data["input"] == {"json": {"results": ["A", "B", "C"]}}
    complete(log, "report", "ok")
    assert log.run.status is RunStatus.SUCCEEDED
    assert verify_chain(log.envelopes) is None
    assert replay(log.envelopes) == log.state


def test_a_child_retries_alone_and_a_failed_child_fails_the_step() -> None:
    log, _ = begin(["a", "b"])
    first = log.attempt("scan[1]")
    retry = FailStep(
        run_id=RUN,
        step="scan[1]",
        attempt_id=first,
        error_kind="retryable",
        error_type="http_503",
        message="busy",
    )
    assert log.send(retry) == ["step.failed", "step.dispatched"]
    assert log.run.steps["scan[0]"].attempt == 1
    complete(log, "scan[0]", "A")
    final = retry.model_copy(update={"attempt_id": log.attempt("scan[1]")})
    assert log.send(final) == ["step.failed", "step.failed", "step.skipped", "run.failed"]
    assert "1 item(s) failed: scan[1]" in str(log.envelopes[-1].data["reason"])


def test_an_empty_list_succeeds_with_no_children() -> None:
    _, out = begin([])
    assert out == ["run.started", "step.exploded", "step.succeeded", "step.dispatched"]


@pytest.mark.parametrize(
    ("hosts", "reason"),
    [
        (["h"] * 11, "11 items, more than max_items 10"),
        ("one-host", "not a list"),
    ],
)
def test_a_list_too_long_or_not_a_list_fails_the_step(hosts: object, reason: str) -> None:
    log, out = begin(hosts)
    assert out == ["run.started", "step.failed", "step.skipped", "run.failed"]
    assert reason in str(log.envelopes[1].data["message"])


def test_the_cap_is_settable_and_bounded() -> None:
    begin(["h"] * 11, cap=11)
    with pytest.raises(StoryError, match="max_items"):
        parse_story(STORY % 20_000)
    with pytest.raises(StoryError, match="`for_each` is for action steps"):
        parse_story(
            "id: s\nversion: 1\ntrigger: {webhook: {path: p}}\nsteps:\n"
            "  a: {for_each: event.x, approval: {approvers: [a]}}\n"
        )
