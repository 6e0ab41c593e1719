"""What a due timer means for its run: the ``FireTimer`` half of the decider (pure)."""

from __future__ import annotations

from baton_common.commands import FireTimer
from baton_common.events import RunFailed, TimerFired
from baton_common.state import StepStatus
from baton_common.story import Story
from baton_scheduler.advance import advance
from baton_scheduler.decide_approval import TIMER_ACTOR, approval_timer
from baton_scheduler.progress import Builder, dispatch_any, fail_attempt
from baton_scheduler.starting import delay_done

__all__ = ["TIMER_ACTOR", "fire"]


def fire(run: Builder, cmd: FireTimer, story: Story) -> str | None:
    """Apply a due timer to a running run; return a rejection reason if it is stale.

    A timer is stale when the run no longer holds it: it fired already (a resent
    ``FireTimer``), or what it guarded happened first (a result before the timeout).
    """
    timer = run.run.timers.get(cmd.timer_id)
    if timer is None:
        return f"timer {cmd.timer_id} ({cmd.kind}) is not pending: it fired or is moot"
    if run.now < timer.fire_at:
        return f"timer {cmd.timer_id} is due at {timer.fire_at.isoformat()}, not before"
    run.emit(TimerFired(run_id=cmd.run_id, timer_id=cmd.timer_id, kind=timer.kind, step=timer.step))
    step = timer.step
    match timer.kind:
        case "run_timeout":
            reason = f"run timed out after {story.timeout}"
            run.emit(RunFailed(run_id=cmd.run_id, reason=reason))
            return None
        case "retry":
            assert step is not None
            assert timer.attempt is not None
            # a closing run retries its handlers only, not the steps it is undoing
            if run.run.closing is None or step in run.run.handlers:
                dispatch_any(run, story, step, timer.attempt)
        case "step_timeout":
            assert step is not None
            if run.run.steps[step].status is StepStatus.DISPATCHED:
                fail_attempt(
                    run,
                    story,
                    step,
                    error_kind="retryable",
                    error_type="step_timeout",
                    message="no result within the step's timeout",
                )
        case "approval_timeout" | "approval_reminder":
            approval_timer(run, timer, story)
        case "delay":
            assert step is not None
            delay_done(run, step, timer.fire_at)
    advance(run, story)
    return None
