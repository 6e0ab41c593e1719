"""``needs`` joins and the skip rules (docs/story-engine.md)."""

from __future__ import annotations

from scheduler_log import RUN, Log

from baton_common.commands import CompleteStep, StartRun
from baton_common.state import RunStatus, StepStatus
from baton_common.story import parse_story

BRANCHES = """
id: branches
version: 1
trigger: {webhook: {path: b}}
steps:
  check: {action: http}
  contain: {needs: [check], if: "steps.check.output.bad", action: http}
  review: {needs: [check], if: "not steps.check.output.bad", action: http}
  report: {needs: [contain, review], join: %s, action: http}
"""


def run(join: str, bad: bool) -> Log:
    log = Log(parse_story(BRANCHES % join))
    log.send(StartRun(run_id=RUN, story_id="branches", trigger={}))
    log.send(
        CompleteStep(run_id=RUN, step="check", attempt_id=log.attempt("check"), output={"bad": bad})
    )
    return log


def test_join_any_merges_branches_after_an_if() -> None:
    log = run("any", bad=True)
    assert log.run.steps["review"].status is StepStatus.SKIPPED
    assert log.run.steps["contain"].status is StepStatus.DISPATCHED
    assert "report" not in log.run.steps  # waits for the branch that runs
    out = log.send(CompleteStep(run_id=RUN, step="contain", attempt_id=log.attempt("contain")))
    assert out == ["step.succeeded", "step.dispatched"]


def test_join_all_skips_when_a_branch_was_skipped() -> None:
    log = run("all", bad=True)
    out = log.send(CompleteStep(run_id=RUN, step="contain", attempt_id=log.attempt("contain")))
    assert out == ["step.succeeded", "step.skipped", "run.succeeded"]
    assert "needs not met: review" in str(log.envelopes[-2].data["reason"])


def test_join_any_starts_on_the_first_success_without_waiting() -> None:
    story = parse_story(
        "id: race\nversion: 1\ntrigger: {webhook: {path: r}}\nsteps:\n"
        "  a: {action: http}\n  b: {action: http}\n"
        "  first: {needs: [a, b], join: any, action: http}\n"
    )
    log = Log(story)
    log.send(StartRun(run_id=RUN, story_id="race", trigger={}))
    out = log.send(CompleteStep(run_id=RUN, step="b", attempt_id=log.attempt("b")))
    assert out == ["step.succeeded", "step.dispatched"]
    assert log.run.steps["a"].status is StepStatus.DISPATCHED  # still running
    log.send(CompleteStep(run_id=RUN, step="first", attempt_id=log.attempt("first")))
    assert log.run.status is RunStatus.RUNNING  # a run ends when every step is done
    out = log.send(CompleteStep(run_id=RUN, step="a", attempt_id=log.attempt("a")))
    assert out == ["step.succeeded", "run.succeeded"]


def test_join_any_skips_when_no_need_succeeded() -> None:
    story = parse_story(
        "id: none\nversion: 1\ntrigger: {webhook: {path: n}}\nsteps:\n"
        "  a: {if: 'false', action: http}\n  b: {if: 'false', action: http}\n"
        "  c: {needs: [a, b], join: any, action: http}\n"
    )
    log = Log(story)
    out = log.send(StartRun(run_id=RUN, story_id="none", trigger={}))
    assert out == ["run.started", "step.skipped", "step.skipped", "step.skipped", "run.succeeded"]
    assert "no need succeeded: a, b" in str(log.envelopes[-2].data["reason"])
