"""A batch's rows of runs, approvals and step attempts, each kind in one statement.

One statement per table and kind, whatever the number of rows: the rows go as one jsonb
document, read back as rows in PostgreSQL (``_unnest``, ADR 0540). An ``executemany`` runs
its statement once per row in PostgreSQL, which cost more than the row's own work. A
set-based statement may touch a row only once, so rows with the same key are merged first
into what applying them one by one, in log order, left behind (``_merged``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Hashable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final, TypeVar

from baton_audit.attempts import AttemptFinished, AttemptStarted
from baton_audit.db import Connection, EncodedJsonb, encode_jsonb, has_non_finite
from baton_audit.projection import ApprovalDecision, ApprovalEscalation, ApprovalRequest, RunRow
from baton_common.state import RunState

__all__ = ["write_attempts", "write_gate_changes", "write_runs"]

Row = tuple[object, ...]
T = TypeVar("T")


def _unnest(columns: str, *, states: bool = False) -> str:
    """The rows of ``$1`` (a jsonb array of rows, each an array of values, ``_document``) as
    ``v (c1, c2, ...)`` with the types of ``columns`` (``"c1 t1, c2 t2, ..."``); with
    ``states``, and a last column ``state`` (json) from the text array ``$2``, in order."""
    found = []
    for n, column in enumerate(columns.split(", ")):
        name, kind = column.split(" ")
        if kind == "jsonb":  # a JSON null is the absent value (the columns take no null)
            found.append(f"nullif(r -> {n}, 'null'::jsonb) as {name}")
        elif kind == "text":
            found.append(f"r ->> {n} as {name}")
        else:
            found.append(f"(r ->> {n})::{kind} as {name}")
    if not states:
        return f"(select {', '.join(found)} from jsonb_array_elements($1::jsonb) as e (r)) as v"
    return (
        f"(select {', '.join(found)}, s.state::json as state"
        " from jsonb_array_elements($1::jsonb) with ordinality as e (r, n)"
        " join unnest($2::text[]) with ordinality as s (state, n) using (n)) as v"
    )


def _names(columns: str) -> list[str]:
    """The names of ``columns`` (``"c1 t1, c2 t2, ..."``)."""
    return [column.split(" ")[0] for column in columns.split(", ")]


def _set(names: Iterable[str], source: str) -> str:
    return ", ".join(f"{name} = {source}.{name}" for name in names)


def _upsert(
    table: str, columns: str, *, key: str, kept: str = "", select: str = "*", states: bool = False
) -> str:
    """Insert the rows of ``$1`` (``columns`` and ``states`` as :func:`_unnest` takes them)
    into ``table``; a row whose ``key`` exists gets every column but the key's and ``kept``."""
    names = [*_names(columns), "state"] if states else _names(columns)
    fixed = {*key.split(", "), *kept.split(", ")}
    source = _unnest(columns, states=states)
    return (
        f"insert into {table} ({', '.join(names)}) select {select} from {source}"
        f" on conflict ({key}) do update set "
        + _set((n for n in names if n not in fixed), "excluded")
    )


_RUNS: Final = (
    "run_id text, story_id text, story_version integer, status text, started_at timestamptz,"
    " ended_at timestamptz, last_seq bigint, correlation_id text, dedup_key text,"
    " event_count integer, updated_at timestamptz"
)
# A run's state is not in the document: as a jsonb member PostgreSQL would parse it into
# jsonb's binary form, though it is stored as json text (ADR 0560). The states go as a
# text array beside it ($2, in the rows' order).
# The rows the batch found are locked by it, so they exist: a plain update.
_UPDATE_RUNS: Final = (
    f"update runs set {_set((n for n in [*_names(_RUNS), 'state'] if n != 'run_id'), 'v')}"
    f" from {_unnest(_RUNS, states=True)} where runs.run_id = v.run_id"
)
# Another writer may have inserted a run meanwhile (a rebalance): the insert then updates it.
_INSERT_RUNS: Final = _upsert("runs", _RUNS, key="run_id", states=True)

# approvers go as jsonb arrays: PostgreSQL's arrays of arrays must all have one length.
_APPROVERS: Final = (
    "array(select a from jsonb_array_elements_text(v.approvers) with ordinality as t (a, n)"
    " order by n)"
)
_REQUEST: Final = _upsert(
    "approvals",
    "gate_id text, run_id text, step text, approvers jsonb, message text,"
    " requested_at timestamptz, requested_event_id text",
    key="gate_id",
    select=f"gate_id, run_id, step, {_APPROVERS}, message, requested_at, requested_event_id",
)
_ESCALATION: Final = (
    f"update approvals set approvers = {_APPROVERS}"
    f" from {_unnest('gate_id text, approvers jsonb')} where approvals.gate_id = v.gate_id"
)
_DECISION: Final = _upsert(
    "approvals",
    "gate_id text, run_id text, step text, decided_at timestamptz, decision text,"
    " approver text, comment text, channel text, decided_event_id text",
    key="gate_id",
    kept="run_id, step",  # the request's
)
_DISPATCH: Final = _upsert(
    "step_attempts",
    "attempt_id text, run_id text, step text, attempt integer, action text, queue text,"
    " input jsonb, dispatched_at timestamptz, dispatched_event_id text",
    key="run_id, attempt_id",
)
# A second result for the same attempt is ignored by the scheduler; the first one stays.
_FINISH: Final = (
    _upsert(
        "step_attempts",
        "attempt_id text, run_id text, step text, attempt integer, outcome text,"
        " finished_at timestamptz, finished_event_id text, output jsonb, error_kind text,"
        " error_type text, error_message text, will_retry boolean",
        key="run_id, attempt_id",
        kept="step, attempt",  # the dispatch's
    )
    + " where step_attempts.outcome is null"
)


def _document(rows: Iterable[Row], *, finite: bool) -> EncodedJsonb:
    """Rows as one jsonb array, their times as ISO 8601 text (``_time``).

    One document rather than an array per column: asyncpg checks every element of an
    array against the collection ABCs in Python, which cost more than the row's write.
    The codec's checks hold (NaN or infinity anywhere and PostgreSQL refuses the batch)
    unless ``finite``: the caller knows the rows hold no NaN or infinity.
    """
    return encode_jsonb(list(rows), finite=finite, times=True)


def _time(value: datetime | None) -> datetime | None:
    """A time with its offset, which PostgreSQL reads back exactly (the document writes it
    as ``isoformat`` does); a naive time is taken as local time, as asyncpg's own encoder
    (``astimezone``) takes it."""
    if value is None or value.tzinfo is not None:
        return value
    return value.astimezone(UTC)


def _merged(
    items: Iterable[T], key: Callable[[T], Hashable], merge: Callable[[T, T], T]
) -> list[T]:
    """One item per key: ``merge(earlier, later)`` folds items of a key in order."""
    found: dict[Hashable, T] = {}
    for item in items:
        k = key(item)
        earlier = found.get(k)
        found[k] = item if earlier is None else merge(earlier, item)
    return list(found.values())


def _gate(change: ApprovalRequest | ApprovalDecision | ApprovalEscalation) -> str:
    return change.gate_id


def _attempt(change: AttemptStarted | AttemptFinished) -> tuple[str, str]:
    return change.run_id, change.attempt_id


def _later(earlier: T, later: T) -> T:
    return later


def _earlier(earlier: T, later: T) -> T:
    return earlier


async def _execute(
    conn: Connection, statement: str, rows: Sequence[Row], *, finite: bool = False
) -> None:
    if rows:
        await conn.execute(statement, _document(rows, finite=finite))


_STATE: Final = RunState.__pydantic_serializer__


def _state(state: RunState | None, *, finite: bool) -> str | None:
    """A run's state as the ``json`` column holds it: pydantic's JSON without the fields
    that hold None (migration 0550; they read back as their default, None).

    pydantic writes NaN and infinities as null, where PostgreSQL must refuse the state (the
    projector then dead-letters the record): a state not known to be ``finite`` is checked,
    and one that holds such a value goes as the standard library writes it (``NaN``,
    ``Infinity``), which the ``json`` type refuses."""
    if state is None:
        return None
    if not finite:
        dumped = state.model_dump(mode="json", exclude_none=True)
        if has_non_finite(dumped):
            return json.dumps(dumped)
    return _STATE.to_json(state, exclude_none=True).decode()


def _run_args(run: RunRow) -> Row:
    return (
        run.run_id,
        run.story_id,
        run.story_version,
        run.status,  # a StrEnum: orjson writes its value
        _time(run.started_at),
        _time(run.ended_at),
        run.last_seq,
        run.correlation_id,
        run.dedup_key,
        run.event_count,
        _time(run.updated_at),
    )


async def write_runs(
    conn: Connection, runs: Iterable[RunRow], stored: frozenset[str], finite: Container[str]
) -> None:
    """Write one row per run (a batch folds each run once); ``stored``: rows that exist;
    ``finite``: runs whose state is known to hold no NaN or infinity."""
    updates: tuple[list[Row], list[str | None]] = ([], [])
    inserts: tuple[list[Row], list[str | None]] = ([], [])
    for run in runs:
        rows, states = updates if run.run_id in stored else inserts
        rows.append(_run_args(run))
        states.append(_state(run.state, finite=run.run_id in finite))
    for statement, (rows, states) in ((_UPDATE_RUNS, updates), (_INSERT_RUNS, inserts)):
        if rows:  # text, numbers and None only: no NaN check (``finite``)
            await conn.execute(statement, _document(rows, finite=True), states)


def _decision(earlier: ApprovalDecision, later: ApprovalDecision) -> ApprovalDecision:
    # An update of the row leaves the run and step its insert gave.
    return replace(later, run_id=earlier.run_id, step=earlier.step)


async def write_gate_changes(
    conn: Connection, changes: Sequence[ApprovalRequest | ApprovalDecision | ApprovalEscalation]
) -> None:
    """Requests, then escalations, then decisions: a decision may arrive in the same batch
    as its request, and each writes its own columns, so this order gives the log's result.
    Their rows hold text, lists of text and None only: no NaN check (``finite``)."""
    requests = [c for c in changes if isinstance(c, ApprovalRequest)]
    await _execute(
        conn,
        _REQUEST,
        [
            (
                r.gate_id,
                r.run_id,
                r.step,
                r.approvers,
                r.message,
                _time(r.requested_at),
                r.requested_event_id,
            )
            for r in _merged(requests, _gate, _later)
        ],
        finite=True,
    )
    escalations = [c for c in changes if isinstance(c, ApprovalEscalation)]
    await _execute(
        conn,
        _ESCALATION,
        [(e.gate_id, e.approvers) for e in _merged(escalations, _gate, _later)],
        finite=True,
    )
    decisions = [c for c in changes if isinstance(c, ApprovalDecision)]
    await _execute(
        conn,
        _DECISION,
        [
            (
                d.gate_id,
                d.run_id,
                d.step,
                _time(d.decided_at),
                d.decision,
                d.approver,
                d.comment,
                d.channel,
                d.decided_event_id,
            )
            for d in _merged(decisions, _gate, _decision)
        ],
        finite=True,
    )


async def write_attempts(
    conn: Connection,
    started: Sequence[AttemptStarted],
    finished: Sequence[AttemptFinished],
    *,
    finite: bool = False,
) -> None:
    """Dispatches (a later one rewrites the row), then results (the first one stays).
    ``finite``: their inputs and outputs are known to hold no NaN or infinity."""
    await _execute(
        conn,
        _DISPATCH,
        [
            (
                a.attempt_id,
                a.run_id,
                a.step,
                a.attempt,
                a.action,
                a.queue,
                a.input,
                _time(a.dispatched_at),
                a.dispatched_event_id,
            )
            for a in _merged(started, _attempt, _later)
        ],
        finite=finite,
    )
    await _execute(
        conn,
        _FINISH,
        [
            (
                f.attempt_id,
                f.run_id,
                f.step,
                f.attempt,
                f.outcome,
                _time(f.finished_at),
                f.finished_event_id,
                f.output,
                f.error_kind,
                f.error_type,
                f.error_message,
                f.will_retry,
            )
            for f in _merged(finished, _attempt, _earlier)
        ],
        finite=finite,
    )
