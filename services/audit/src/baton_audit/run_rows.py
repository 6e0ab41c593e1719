"""The runs a batch folds its events into: locked in PostgreSQL, kept in memory between batches.

Each batch locks its runs' rows (``for update``) and folds its events into them. Reading a
row's whole state back and validating it costs more than folding the event itself when a
batch holds one or two events per run, as it does when many runs are in flight (the
service live, or a rebuild of an interleaved log). So the rows a batch wrote are kept,
and the next batch reads only each row's ``event_count`` under the same lock: a kept row
whose count is the stored one is the stored row, and only the others are read in full.

Why a count is enough: ``event_count`` grows by one with every event stored for the run,
and a run's row is a pure fold of its stored events in log order (exactly once, ADR 8).
Two rows of a run with the same count are folds of the same events. A kept row from a
batch that was rolled back, or a row another replica moved on meanwhile, or a store
emptied by a rebuild, has a count that differs from the stored one (or no stored row), so
it is read again.

Each row also says whether its state is known to hold no NaN or infinity (``finite``):
a state folded only from payloads orjson parsed, or read back and checked. Such a state
is written as pydantic serializes it, without the check (``set_writes``, ADR 0550).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Iterable, Sequence
from typing import Final, NamedTuple

from baton_audit.db import Connection, column, has_non_finite
from baton_audit.projection import RunRow

__all__ = ["RUN_COLUMNS", "Locked", "RunRows"]

RUN_COLUMNS: Final = (
    "run_id, story_id, story_version, status, started_at, ended_at, last_seq, correlation_id,"
    " dedup_key, event_count, updated_at, state"
)


class Locked(NamedTuple):
    """A batch's runs whose rows exist, by id (locked), and those whose state is finite."""

    rows: dict[str, RunRow]
    finite: set[str]


class RunRows:
    """Locks and loads the rows of a batch's runs, from memory when they are current."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[str, tuple[RunRow, bool]] = OrderedDict()

    async def lock(self, conn: Connection, run_ids: Sequence[str]) -> Locked:
        """Lock ``run_ids``' rows (in id order) and return those that exist, in id order."""
        if not self._capacity:
            return await _read(conn, run_ids, lock=True)
        counts = await conn.fetch(
            "select run_id, event_count from runs where run_id = any($1::text[])"
            " order by run_id for update",
            sorted(run_ids),
        )
        found: dict[str, RunRow | None] = {}
        finite: set[str] = set()
        stale: list[str] = []
        for row in counts:
            run_id = column(row, "run_id", str)
            kept = self._kept.get(run_id)
            if kept is not None and kept[0].event_count == column(row, "event_count", int):
                found[run_id] = kept[0]
                if kept[1]:
                    finite.add(run_id)
            else:
                found[run_id] = None
                stale.append(run_id)
        if stale:
            read = await _read(conn, stale, lock=False)  # locked just above
            for run_id in stale:
                found[run_id] = read.rows[run_id]
            finite |= read.finite
        return Locked({run_id: row for run_id, row in found.items() if row is not None}, finite)

    def keep(self, rows: Iterable[RunRow], finite: Container[str]) -> None:
        """Remember rows just written (the most recent ``capacity`` runs are kept);
        ``finite``: the runs whose state is known to hold no NaN or infinity."""
        if not self._capacity:
            return
        kept = self._kept
        for row in rows:
            run_id = row.run_id
            kept[run_id] = (row, run_id in finite)
            kept.move_to_end(run_id)
        while len(kept) > self._capacity:
            kept.popitem(last=False)


async def _read(conn: Connection, run_ids: Sequence[str], *, lock: bool) -> Locked:
    rows = await conn.fetch(
        f"select {RUN_COLUMNS} from runs where run_id = any($1::text[])"
        " order by run_id" + (" for update" if lock else ""),
        sorted(run_ids),
    )
    read = Locked({}, set())
    for row in rows:
        state = row["state"]
        run = RunRow.model_validate(dict(row))
        read.rows[run.run_id] = run
        # jsonb holds no NaN, but a huge number reads back as an infinity
        if not has_non_finite(state):
            read.finite.add(run.run_id)
    return read
