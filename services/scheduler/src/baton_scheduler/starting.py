"""Starting a step once its needs allow: skip rules, ``if``, delays and for_each.

Pure like the rest of the decider: ``now`` is the deciding command's log time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from pydantic import JsonValue

from baton_common import ids
from baton_common.events import StepExploded, StepSkipped, StepSucceeded
from baton_common.expressions import ExpressionError, evaluate_condition, render_value
from baton_common.state import RunState, StepStatus
from baton_common.story import Step, Story
from baton_scheduler.progress import (
    NOT_STARTED,
    Builder,
    dispatch,
    fail_step,
    render_context,
    schedule,
)

__all__ = ["delay_done", "implode", "needs_done", "start_step"]


_DONE: Final = frozenset(s for s in StepStatus if s.done)


def needs_done(state: RunState, step: Step) -> bool:
    """Whether the step can be decided: every need done, or (``join: any``) one succeeded."""
    steps = state.steps
    if step.join == "any":
        statuses = [steps.get(n, NOT_STARTED).status for n in step.needs]
        if StepStatus.SUCCEEDED in statuses:
            return True
        return all(s in _DONE for s in statuses)
    for need in step.needs:  # a need not started yet is pending: not done
        found = steps.get(need)
        if found is None or found.status not in _DONE:
            return False
    return True


def start_step(run: Builder, name: str, step: Step) -> None:
    state = run.run
    unmet = [
        n for n in step.needs if state.steps.get(n, NOT_STARTED).status is not StepStatus.SUCCEEDED
    ]
    if step.join == "any" and step.needs and len(unmet) == len(step.needs):
        reason = f"no need succeeded: {', '.join(unmet)}"
        run.emit(StepSkipped(run_id=state.run_id, step=name, reason=reason))
        return
    if step.join == "all" and unmet:
        run.emit(
            StepSkipped(run_id=state.run_id, step=name, reason=f"needs not met: {', '.join(unmet)}")
        )
        return
    if step.if_ is not None:
        try:
            wanted = evaluate_condition(step.if_, render_context(state))
        except ExpressionError as exc:
            fail_step(run, name, "ExpressionError", str(exc))
            return
        if not wanted:
            run.emit(StepSkipped(run_id=state.run_id, step=name, reason=f"if: {step.if_}"))
            return
    if step.delay is not None:
        _start_delay(run, name, step)
        return
    if step.for_each is not None:
        _explode(run, name, step)
        return
    dispatch(run, name, step, 1)


def _explode(run: Builder, name: str, step: Step) -> None:
    assert step.for_each is not None
    source = step.for_each if "{{" in step.for_each else f"{{{{ {step.for_each} }}}}"
    try:
        items = render_value(source, render_context(run.run))
    except ExpressionError as exc:
        fail_step(run, name, "ExpressionError", f"for_each: {exc}")
        return
    if not isinstance(items, list):
        fail_step(run, name, "ForEachError", f"for_each gave {type(items).__name__}, not a list")
        return
    if len(items) > step.max_items:
        message = f"for_each gave {len(items)} items, more than max_items {step.max_items}"
        fail_step(run, name, "ForEachError", message)
        return
    if run.policies:
        from baton_scheduler.policy_gate import check_for_each  # it builds on progress

        if not check_for_each(run, name, len(items)):
            return
    run.emit(StepExploded(run_id=run.run.run_id, step=name, items=items))
    for index in range(len(items)):
        dispatch(run, f"{name}[{index}]", step, 1)


def implode(run: Builder, story: Story) -> None:
    """Finish every exploded step whose children are all done: outputs in item order."""
    for name, step_state in list(run.run.steps.items()):
        if step_state.items is None or step_state.status is not StepStatus.DISPATCHED:
            continue
        children = [
            run.run.steps.get(f"{name}[{i}]", NOT_STARTED) for i in range(len(step_state.items))
        ]
        if not all(c.status.done for c in children):
            continue
        failed = [
            f"{name}[{i}]" for i, c in enumerate(children) if c.status is not StepStatus.SUCCEEDED
        ]
        if failed:
            fail_step(
                run, name, "ForEachError", f"{len(failed)} item(s) failed: {', '.join(failed)}"
            )
            continue
        run.emit(
            StepSucceeded(
                run_id=run.run.run_id,
                step=name,
                attempt=1,
                attempt_id=ids.attempt_id(run.run.run_id, name, 1),
                output=[c.output for c in children],
            )
        )


def _start_delay(run: Builder, name: str, step: Step) -> None:
    assert step.delay is not None
    if step.delay.for_ is not None:
        wait = step.delay.for_
    else:
        assert step.delay.until is not None
        try:
            until = _timestamp(render_value(step.delay.until, render_context(run.run)))
        except (ExpressionError, ValueError) as exc:
            fail_step(run, name, "ExpressionError", f"delay until: {exc}")
            return
        wait = until - run.now
    if wait <= timedelta(0):
        delay_done(run, name, run.now)
        return
    schedule(run, "delay", wait, step=name)


def delay_done(run: Builder, name: str, at: datetime) -> None:
    """A delay step's wait is over: it succeeds with the time it waited until."""
    run.emit(
        StepSucceeded(
            run_id=run.run.run_id,
            step=name,
            attempt=1,
            attempt_id=ids.attempt_id(run.run.run_id, name, 1),
            output={"waited_until": at.isoformat()},
        )
    )


def _timestamp(value: JsonValue) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 timestamp, got {value!r}")
    at = datetime.fromisoformat(value.strip())
    if at.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return at
