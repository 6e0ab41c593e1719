"""Run state and ``evolve``: the pure fold of a run's events (DESIGN.md rule 2).

The scheduler, the audit service (time travel, verification) and tests all rebuild
a run's state with this one function, so a replay reproduces it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

from baton_common.commands import TimerKind
from baton_common.envelope import Envelope
from baton_common.events import (
    EVENT_ADAPTER,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalNotNeeded,
    ApprovalReminded,
    ApprovalRequested,
    ApprovalVoteRecorded,
    CommandRejected,
    CompensationExtended,
    CompensationStarted,
    DedupSlotAdvanced,
    RunCancelled,
    RunDeduplicated,
    RunEvent,
    RunFailed,
    RunStarted,
    RunSucceeded,
    StepDispatched,
    StepExploded,
    StepFailed,
    StepSkipped,
    StepSucceeded,
    TimerFired,
    TimerScheduled,
)
from baton_common.hashing import GENESIS
from baton_common.trusted import replaced, trusted

__all__ = [
    "RunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    "Timer",
    "evolve",
    "replay",
    "stamped",
]


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    WAITING = "waiting_approval"
    DELAYED = "delayed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE: Final = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})


class StepState(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    attempt_id: str | None = None
    gate_id: str | None = None
    output: JsonValue = None
    error: str | None = None
    decided_by: str | None = None
    items: list[JsonValue] | None = None
    approvers: list[str] | None = None  # a gate's eligible approvers (grows on escalation)
    votes: list[str] = []  # approvals recorded towards a gate's quorum, in order
    escalated: bool = False
    child_run_id: str | None = None  # a `story` step's current sub-story run


class Timer(BaseModel):
    """A pending timer: the run expects a ``FireTimer`` for it at ``fire_at``."""

    model_config = ConfigDict(frozen=True)

    kind: TimerKind
    step: str | None = None
    attempt: int | None = None
    fire_at: datetime


# timers a step's outcome makes moot; a retry timer is only consumed by firing
_STEP_BOUND: frozenset[str] = frozenset(
    {"step_timeout", "approval_timeout", "approval_reminder", "delay"}
)


class RunState(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    story_id: str
    story_version: int
    status: RunStatus = RunStatus.RUNNING
    trigger: dict[str, JsonValue]
    dedup_key: str | None = None
    dedup_until: str | None = None
    ingest_id: str | None = None
    steps: dict[str, StepState]
    started_at: datetime
    seq: int = 0
    last_hash: str = GENESIS
    timers: dict[str, Timer] = {}
    dedup_slot: str | None = None
    parent_run_id: str | None = None
    parent_step: str | None = None
    parent_attempt_id: str | None = None
    dedup_generation: int = 0
    dedup_current: str | None = None
    succeeded: list[str] = []
    closing: str | None = None
    closing_reason: str | None = None
    closing_step: str | None = None
    closing_by: str | None = None
    handlers: list[str] = []
    initiator: str | None = None

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING


_PENDING_STEP: Final = StepState()


def _step(state: RunState, name: str, **changes: object) -> dict[str, StepState]:
    current = state.steps.get(name, _PENDING_STEP)
    return {**state.steps, name: replaced(current, changes)}


def _drop_step_timers(state: RunState, step: str) -> dict[str, Timer]:
    if not state.timers:
        return state.timers  # states are never changed in place: the empty dict is shared
    return {k: t for k, t in state.timers.items() if not (t.step == step and t.kind in _STEP_BOUND)}


def evolve(
    state: RunState | None, event: RunEvent, *, seq: int, hash: str, time: datetime
) -> RunState:
    """Apply one event to a run's state and return the new state.

    Raises:
        ValueError: if the first event of a run is not ``RunStarted``.
    """
    if state is None:
        if not isinstance(event, RunStarted):
            raise ValueError(f"run {event.run_id}: first event is {event.type}, not RunStarted")
        # Every value is typed already (a validated event, the envelope's attributes):
        # ``RunState(...)`` would validate them again and deep-copy its list and dict
        # defaults, a fifth of folding a run's log; states are never changed in place.
        return trusted(
            RunState,
            run_id=event.run_id,
            story_id=event.story_id,
            story_version=event.story_version,
            trigger=event.trigger,
            dedup_key=event.dedup_key,
            dedup_until=event.dedup_until,
            ingest_id=event.ingest_id,
            dedup_slot=event.dedup_slot,
            parent_run_id=event.parent_run_id,
            parent_step=event.parent_step,
            parent_attempt_id=event.parent_attempt_id,
            initiator=event.initiator,
            steps={},
            started_at=time,
            seq=seq,
            last_hash=hash,
        )
    update: dict[str, object] = {"seq": seq, "last_hash": hash}
    match event:
        case StepDispatched(step=step, attempt=attempt, attempt_id=aid, child_run_id=child):
            update["steps"] = _step(
                state,
                step,
                status=StepStatus.DISPATCHED,
                attempt=attempt,
                attempt_id=aid,
                child_run_id=child,
            )
        case StepExploded(step=step, items=items):
            update["steps"] = _step(state, step, status=StepStatus.DISPATCHED, items=list(items))
        case StepSucceeded(step=step, output=output):
            update["steps"] = _step(state, step, status=StepStatus.SUCCEEDED, output=output)
            update["succeeded"] = [*state.succeeded, step]
            update["timers"] = _drop_step_timers(state, step)
        case StepFailed(step=step, will_retry=will_retry, message=message):
            status = StepStatus.PENDING if will_retry else StepStatus.FAILED
            update["steps"] = _step(state, step, status=status, error=message)
            update["timers"] = _drop_step_timers(state, step)
        case StepSkipped(step=step, reason=reason):
            update["steps"] = _step(state, step, status=StepStatus.SKIPPED, error=reason)
        case TimerScheduled(timer_id=tid, kind=kind, step=step, attempt=attempt, fire_at=at):
            timer = Timer(kind=kind, step=step, attempt=attempt, fire_at=at)
            update["timers"] = {**state.timers, tid: timer}
            if kind == "delay" and step is not None:
                update["steps"] = _step(state, step, status=StepStatus.DELAYED)
        case TimerFired(timer_id=tid):
            update["timers"] = {k: t for k, t in state.timers.items() if k != tid}
        case CompensationStarted():
            update["closing"] = event.outcome
            update["closing_reason"] = event.reason
            update["closing_step"] = event.step
            update["closing_by"] = event.requested_by
            update["handlers"] = list(event.handlers)
        case CompensationExtended(handlers=handlers):
            update["handlers"] = list(handlers)
        case DedupSlotAdvanced(generation=generation, current=current):
            update["dedup_generation"] = generation
            update["dedup_current"] = current
        case ApprovalRequested(step=step, gate_id=gid, approvers=approvers):
            update["steps"] = _step(
                state, step, status=StepStatus.WAITING, gate_id=gid, approvers=list(approvers)
            )
        case ApprovalVoteRecorded(step=step, approver=approver):
            votes = [*state.steps[step].votes, approver]
            update["steps"] = _step(state, step, votes=votes)
        case ApprovalEscalated(step=step, approvers=approvers):
            update["steps"] = _step(state, step, approvers=list(approvers), escalated=True)
        case ApprovalNotNeeded(step=step, gate_id=gid, reason=reason):
            update["steps"] = _step(
                state,
                step,
                status=StepStatus.SUCCEEDED,
                gate_id=gid,
                output={"decision": "not_needed", "reason": reason},
            )
            update["succeeded"] = [*state.succeeded, step]
            update["timers"] = _drop_step_timers(state, step)
        case ApprovalGranted(step=step, approver=approver, comment=comment):
            granted: dict[str, JsonValue] = {
                "decision": "approved",
                "approver": approver,
                "comment": comment,
            }
            if event.approvals is not None:
                granted["approvals"] = list(event.approvals)
            update["steps"] = _step(
                state, step, status=StepStatus.SUCCEEDED, decided_by=approver, output=granted
            )
            update["timers"] = _drop_step_timers(state, step)
        case ApprovalDenied(step=step, approver=approver, comment=comment):
            update["steps"] = _step(
                state,
                step,
                status=StepStatus.FAILED,
                decided_by=approver,
                error=f"denied by {approver}" + (f": {comment}" if comment else ""),
                output={"decision": "denied", "approver": approver, "comment": comment},
            )
            update["timers"] = _drop_step_timers(state, step)
        case RunSucceeded():
            update["status"] = RunStatus.SUCCEEDED
            update["timers"] = {}
        case RunFailed():
            update["status"] = RunStatus.FAILED
            update["timers"] = {}
        case RunCancelled():
            update["status"] = RunStatus.CANCELLED
            update["timers"] = {}
        case RunStarted() | RunDeduplicated() | CommandRejected() | ApprovalReminded():
            pass
    return replaced(state, update)


def stamped(state: RunState, *, seq: int, hash: str) -> RunState:
    """``state`` with its chain position: what ``evolve(..., seq=seq, hash=hash)`` returns
    when ``state`` is ``evolve``'s result for the same event with another ``seq`` and
    ``hash`` (nothing else in a state depends on them). The scheduler's journal stamps the
    states its decider already evolved instead of evolving every event twice."""
    return replaced(state, {"seq": seq, "last_hash": hash})


def replay(envelopes: Iterable[Envelope]) -> RunState | None:
    """Fold a run's envelopes, in log order, into its state."""
    state: RunState | None = None
    for envelope in envelopes:
        event = EVENT_ADAPTER.validate_python(envelope.data)
        state = evolve(
            state, event, seq=envelope.seq or 0, hash=envelope.hash or "", time=envelope.time
        )
    return state
