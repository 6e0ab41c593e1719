"""Pure mappings from run events to the audit store's rows.

A run's status follows ``baton_common.state``: the state is folded with ``evolve`` and
kept with the run, so the audit store and the scheduler agree on what a run is. On top
of it, a run that is still running while a gate is open is ``waiting_approval``.
Nothing here reads a clock: a rebuild from ``baton.runs`` reproduces every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from baton_audit.db import EncodedJsonb, encode_jsonb
from baton_common.envelope import Envelope, time_text
from baton_common.events import (
    EVENT_ADAPTER,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalRequested,
    RunEvent,
)
from baton_common.state import RunState, RunStatus, StepStatus, evolve
from baton_common.trusted import assembled

__all__ = [
    "ApprovalDecision",
    "ApprovalEscalation",
    "ApprovalRequest",
    "AuditStatus",
    "EventRow",
    "RunRow",
    "RunSummary",
    "approval_change",
    "event_row",
    "fold_run",
    "next_run",
    "parse_event",
    "run_status",
]


class AuditStatus(StrEnum):
    UNKNOWN = "unknown"
    """Events name the run, but its ``RunStarted`` has not been seen (e.g. a rejected
    command for a run that never started)."""
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_TERMINAL = {
    RunStatus.SUCCEEDED: AuditStatus.SUCCEEDED,
    RunStatus.FAILED: AuditStatus.FAILED,
    RunStatus.CANCELLED: AuditStatus.CANCELLED,
}


def run_status(state: RunState | None) -> AuditStatus:
    """A run's status: its ``RunState`` status, or ``waiting_approval`` while a gate is open."""
    if state is None:
        return AuditStatus.UNKNOWN
    if state.status in _TERMINAL:
        return _TERMINAL[state.status]
    if any(step.status is StepStatus.WAITING for step in state.steps.values()):
        return AuditStatus.WAITING_APPROVAL
    return AuditStatus.RUNNING


class RunSummary(BaseModel):
    """One run as the audit store lists it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    story_id: str | None
    story_version: int | None
    status: AuditStatus
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int | None
    correlation_id: str | None
    dedup_key: str | None
    event_count: int
    updated_at: datetime


class RunRow(RunSummary):
    """A run's row: the summary and the folded state it is derived from."""

    state: RunState | None


def parse_event(envelope: Envelope) -> tuple[RunEvent | None, str | None]:
    """The envelope's event, or None and the reason it cannot affect the run's state.

    An unknown or invalid payload is still a fact in the log: the caller stores it.
    """
    try:
        event = EVENT_ADAPTER.validate_python(envelope.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "data"
        return None, f"{envelope.type} is not a known run event: {where}: {err['msg']}"
    if envelope.subject is not None and event.run_id != envelope.subject:
        return None, f"payload run_id {event.run_id} differs from subject {envelope.subject}"
    return event, None


def next_run(
    previous: RunRow | None, run_id: str, envelope: Envelope, event: RunEvent | None
) -> RunRow:
    """The run's row after one more event of its log (``event`` None: stored, not understood)."""
    return fold_run(previous, run_id, [(envelope, event)])


def fold_run(
    previous: RunRow | None,
    run_id: str,
    log: Sequence[tuple[Envelope, RunEvent | None]],
) -> RunRow:
    """The run's row after the events of ``log``, in order: ``next_run`` applied to each.

    The batch path builds one row per run and batch rather than one per event; the
    intermediate rows are not written, and nothing in a row depends on another's but the
    first end time, which is taken here as ``next_run`` would take it.
    """
    before = previous or _NO_RUN
    state = before.state
    ended_at = before.ended_at
    last_seq = before.last_seq
    correlation_id = before.correlation_id
    story_id, story_version = before.story_id, before.story_version
    for envelope, event in log:
        if event is not None:
            try:
                state = evolve(
                    state,
                    event,
                    seq=envelope.seq or 0,
                    hash=envelope.hash or "",
                    time=envelope.time,
                )
            except ValueError:
                pass  # not RunStarted and no state yet: the run stays unknown
        if ended_at is None and state is not None and state.status in _TERMINAL:
            ended_at = envelope.time
        if envelope.seq is not None and (last_seq is None or envelope.seq > last_seq):
            last_seq = envelope.seq
        if correlation_id is None:
            correlation_id = envelope.correlationid
        if state is None:  # a state, once there, stays: these only matter without one
            story_id = _first(story_id, envelope.storyid)
            story_version = _first(story_version, envelope.storyversion)
    if state is not None:
        story_id, story_version = state.story_id, state.story_version
    # Every value is typed already: construct without re-validating (the hot path).
    return _run_row(
        run_id=run_id,
        story_id=story_id,
        story_version=story_version,
        status=run_status(state),
        started_at=state.started_at if state is not None else None,
        ended_at=ended_at,
        last_seq=last_seq,
        correlation_id=correlation_id,
        dedup_key=state.dedup_key if state is not None else None,
        event_count=before.event_count + len(log),
        updated_at=log[-1][0].time if log else before.updated_at,
        state=state,
    )


_RUN_FIELDS: Final = frozenset(RunRow.model_fields)


def _run_row(**values: object) -> RunRow:
    """``RunRow.model_construct`` with every field given, without its per-field default
    handling (a tenth of the projection's Python time per event)."""
    assert values.keys() == _RUN_FIELDS
    return assembled(RunRow, values, set(_RUN_FIELDS))


T = TypeVar("T")


def _first(*values: T | None) -> T | None:
    return next((v for v in values if v is not None), None)


_NO_RUN = RunRow(
    run_id="",
    story_id=None,
    story_version=None,
    status=AuditStatus.UNKNOWN,
    started_at=None,
    ended_at=None,
    last_seq=None,
    correlation_id=None,
    dedup_key=None,
    event_count=0,
    updated_at=datetime.min.replace(tzinfo=UTC),
    state=None,
)


class EventRow(NamedTuple):
    """One ``events`` row: the envelope's attributes and its payload, each stored once.

    The envelope's document is rebuilt from these columns on read (``store.envelope_document``);
    ``time_text`` is its time as the document held it (offset and precision kept). A tuple,
    in the columns' order: the batch's ``COPY`` takes it as it is.
    """

    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    id: str
    run_id: str
    seq: int | None
    type: str
    time: datetime
    source: str
    causationid: str | None
    correlationid: str | None
    actor: str | None
    storyid: str | None
    storyversion: int | None
    prevhash: str | None
    hash: str | None
    data: EncodedJsonb
    time_text: str
    specversion: str
    datacontenttype: str
    traceparent: str | None


def event_row(
    envelope: Envelope,
    *,
    run_id: str,
    topic: str,
    partition: int,
    offset: int,
    finite: bool = False,
) -> EventRow:
    """The ``events`` row of an envelope read at ``topic``/``partition``/``offset``.

    ``run_id`` is the envelope's subject (the writer refuses envelopes without one), so
    the ``run_id`` column gives the document's ``subject`` back. ``finite``: the payload
    is known to hold no NaN or infinity (``decode_record_finite``).
    """
    # Positional, in the fields' order: keyword arguments cost a third of building the row.
    return EventRow._make(
        (
            topic,
            partition,
            offset,
            envelope.id,
            run_id,
            envelope.seq,
            envelope.type,
            envelope.time,
            envelope.source,
            envelope.causationid,
            envelope.correlationid,
            envelope.actor,
            envelope.storyid,
            envelope.storyversion,
            envelope.prevhash,
            envelope.hash,
            encode_jsonb(envelope.data, finite=finite),
            time_text(envelope.time),  # pydantic's JSON of it, at a fraction of the cost
            envelope.specversion,
            envelope.datacontenttype,
            envelope.traceparent,
        )
    )


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    gate_id: str
    run_id: str
    step: str
    approvers: list[str]
    message: str | None
    requested_at: datetime
    requested_event_id: str


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    gate_id: str
    run_id: str
    step: str
    decision: Literal["approved", "denied"]
    approver: str
    comment: str | None
    channel: str
    decided_at: datetime
    decided_event_id: str


@dataclass(frozen=True, slots=True)
class ApprovalEscalation:
    """A gate re-opened to more approvers (ADR 0410); its request time stays the first."""

    gate_id: str
    approvers: list[str]


# Each event class has its own ``type`` (the union's discriminator): an event of another
# type matches none of the class patterns of ``approval_change``.
_GATE_TYPES: Final = frozenset(
    kind.model_fields["type"].default
    for kind in (ApprovalRequested, ApprovalGranted, ApprovalDenied, ApprovalEscalated)
)


def approval_change(
    envelope: Envelope, event: RunEvent | None
) -> ApprovalRequest | ApprovalDecision | ApprovalEscalation | None:
    """What an event changes in the ``approvals`` table, if anything."""
    if event is None or event.type not in _GATE_TYPES:
        return None  # most events: no walk through the class patterns below
    match event:
        case ApprovalRequested():
            return ApprovalRequest(
                gate_id=event.gate_id,
                run_id=event.run_id,
                step=event.step,
                approvers=list(event.approvers),
                message=event.message,
                requested_at=envelope.time,
                requested_event_id=envelope.id,
            )
        case ApprovalGranted() | ApprovalDenied():
            return ApprovalDecision(
                gate_id=event.gate_id,
                run_id=event.run_id,
                step=event.step,
                decision="approved" if isinstance(event, ApprovalGranted) else "denied",
                approver=event.approver,
                comment=event.comment,
                channel=event.channel,
                decided_at=envelope.time,
                decided_event_id=envelope.id,
            )
        case ApprovalEscalated():
            return ApprovalEscalation(gate_id=event.gate_id, approvers=list(event.approvers))
        case _:
            return None
