"""Turn a decision into log records: chained event envelopes and the tasks they imply.

Pure like the decider: the same command and state always give byte-identical records,
which is what lets a replay verify the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel

from baton_common import ids
from baton_common.envelope import Envelope, unchecked_envelope
from baton_common.events import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReminded,
    ApprovalRequested,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunSucceeded,
    StepDispatched,
)
from baton_common.hashing import GENESIS, plain_json
from baton_common.records import GateClosed, StepTask
from baton_common.settings import TopicSettings
from baton_common.state import RunState, StepStatus, evolve, stamped
from baton_common.trusted import trusted
from baton_scheduler.calls import call_commands, rejected_call
from baton_scheduler.gate_records import GateRecord, gate_records
from baton_scheduler.sealing import Encoded, Sealer, model_data

__all__ = ["SOURCE", "Entry", "Task", "journal"]

SOURCE = "baton/scheduler"
_STEP_TASK: Final = StepTask.model_fields["type"].default
# the events that may imply task records (a step task, a gate's records, gates closed)
_TASKING: Final = frozenset(
    {
        StepDispatched,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalDenied,
        ApprovalEscalated,
        ApprovalReminded,
        RunSucceeded,
        RunFailed,
        RunCancelled,
    }
)


@dataclass(frozen=True, slots=True)
class Task:
    topic: str
    key: str
    envelope: Envelope
    record: Encoded | None = None  # its value and headers, when the journal wrote them


@dataclass(frozen=True, slots=True)
class Entry:
    """What one command adds to the log: events, tasks and the new states of the runs
    it changed (usually one; two when a dedup slot starts a new generation)."""

    events: list[Envelope]
    tasks: list[Task]
    states: dict[str, RunState]
    records: list[Encoded]  # per event: its record value and headers


def journal(
    states: Mapping[str, RunState],
    events: list[RunEvent],
    command: Envelope,
    now: datetime,
    topics: TopicSettings,
    after: Sequence[RunState | None] = (),
) -> Entry:
    """Chain each of ``events`` after its run's state and derive their task records.

    ``states`` holds the states, before the command, of the runs the events belong to;
    a run missing from it starts with its ``RunStarted``. Events of a run that does not
    exist (a rejected command for an unknown run) are recorded outside any chain: no
    ``seq``, and ``prevhash`` None.

    ``after`` is the decision's ``after`` (or empty): the states the decider evolved,
    which the journal stamps with ``seq`` and hash rather than evolving again.
    """
    evolved = after if len(after) == len(events) else None
    sealer = Sealer(command, now, SOURCE)
    envelopes: list[Envelope] = []
    records: list[Encoded] = []
    tasks: list[Task] = []
    changed: dict[str, RunState] = {}
    # per run: seq and hash of its newest event so far; the states in ``changed`` are
    # stamped with them once, at the end (nothing in between reads a state's own)
    heads: dict[str, tuple[int, str]] = {}
    for index, event in enumerate(events):
        run_id = event.run_id
        state = changed.get(run_id) or states.get(run_id)
        before = state
        head = heads.get(run_id)
        if head is None and state is not None:
            head = (state.seq, state.last_hash)
        in_chain = state is not None or event.type == "baton.run.started.v1"
        story_id = state.story_id if state is not None else getattr(event, "story_id", None)
        version = (
            state.story_version if state is not None else getattr(event, "story_version", None)
        )
        seq = (head[0] if head is not None else 0) + 1
        envelope, record = sealer.event(
            event,
            id=ids.child_id(command.id, index),
            subject=run_id,
            storyid=story_id,
            storyversion=version,
            correlationid=command.correlationid or run_id,
            seq=seq if in_chain else None,
            prevhash=(head[1] if head is not None else GENESIS) if in_chain else None,
        )
        envelopes.append(envelope)
        records.append(record)
        if in_chain:
            hash_ = envelope.hash or ""
            known = evolved[index] if evolved is not None else None
            if known is not None and known.run_id == run_id:
                state = known
            else:
                state = evolve(state, event, seq=seq, hash=hash_, time=now)
            changed[run_id] = state
            heads[run_id] = (seq, hash_)
        if state is not None:
            tasks.extend(_tasks(event, envelope, before, state, topics, sealer))
            calls = call_commands(event, envelope, state, topics, now)
        else:
            calls = rejected_call(event, command, topics, now)
        if calls:
            tasks.extend(Task(topic, key, env) for topic, key, env in calls)
    for run_id, state in changed.items():
        seq, hash_ = heads[run_id]
        if state.seq != seq or state.last_hash != hash_:
            changed[run_id] = stamped(state, seq=seq, hash=hash_)
    return Entry(envelopes, tasks, changed, records)


def _draft(payload: BaseModel, **attributes: object) -> Envelope:
    """``to_envelope(payload, **attributes)`` for the journal's own attributes (ids it
    made, the command's log time, strings and ints taken from validated envelopes and
    states), which validation would return unchanged: the envelope is built as
    ``build_envelope`` builds it, without validating them again."""
    data = model_data(payload)[0]
    return unchecked_envelope({**attributes, "type": data["type"]}, data)


def _tasks(
    event: RunEvent,
    envelope: Envelope,
    before: RunState | None,
    after: RunState,
    topics: TopicSettings,
    sealer: Sealer,
) -> list[Task]:
    if type(event) not in _TASKING:
        return []  # most events imply no task record

    def task(topic: str, payload: StepTask | GateRecord, n: int = 0) -> Task:
        drafted, record = sealer.task(payload, id=ids.child_id(envelope.id, n), cause=envelope)
        return Task(topic, after.run_id, drafted, record)

    match event:
        case StepDispatched() if (
            event.child_run_id is None and event.policy is None and plain_json(event.input)
        ):
            # the StepTask's model_dump, written directly: every value is JSON already
            data: dict[str, Any] = {
                "type": _STEP_TASK,
                "run_id": event.run_id,
                "story_id": after.story_id,
                "story_version": after.story_version,
                "step": event.step,
                "attempt": event.attempt,
                "attempt_id": event.attempt_id,
                "action": event.action,
                "input": event.input,
                "policy": None,
            }
            drafted, record = sealer.task_data(
                data, True, id=ids.child_id(envelope.id, 0), cause=envelope
            )
            return [Task(topics.task_topic(event.queue), after.run_id, drafted, record)]
        case StepDispatched() if event.child_run_id is None:
            return [
                task(
                    topics.task_topic(event.queue),
                    trusted(
                        StepTask,
                        run_id=event.run_id,
                        story_id=after.story_id,
                        story_version=after.story_version,
                        step=event.step,
                        attempt=event.attempt,
                        attempt_id=event.attempt_id,
                        action=event.action,
                        input=event.input,
                        policy=event.policy,
                    ),
                )
            ]
        case (
            ApprovalRequested()
            | ApprovalGranted()
            | ApprovalDenied()
            | ApprovalEscalated()
            | ApprovalReminded()
        ):
            return [
                task(topics.approvals, payload, n)
                for n, payload in enumerate(gate_records(event, after))
            ]
        case RunSucceeded() | RunFailed() | RunCancelled() if before is not None:
            open_gates = [
                s.gate_id
                for s in before.steps.values()
                if s.status is StepStatus.WAITING and s.gate_id is not None
            ]
            return [
                task(
                    topics.approvals,
                    GateClosed(run_id=event.run_id, gate_id=gate, outcome="cancelled"),
                    n,
                )
                for n, gate in enumerate(open_gates)
            ]
    return []
