"""The scheduler's in-memory run states, grouped by the partition that owns each run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from baton_common.state import RunState

__all__ = ["RunStore", "compact"]


def compact(state: RunState) -> RunState:
    """A finished run as the scheduler still needs it: what answers a late command with
    the right ``CommandRejected`` (status, chain head) and what dedup reads (key, window,
    slot, generation, intake id), without its steps, outputs, trigger or timers.

    Nothing the decider does with a finished run reads the dropped fields: every command
    but ``StartRun`` is refused for a finished run before they are looked at, and
    ``StartRun`` reads only the dedup fields. The log keeps the whole run.
    """
    if not state.finished or (not state.steps and not state.trigger):
        return state
    return state.model_copy(
        update={"steps": {}, "trigger": {}, "timers": {}, "succeeded": [], "handlers": []}
    )


class RunStore:
    """Run states of the partitions this instance owns.

    Changes made while a Kafka transaction is open are staged by the caller and
    applied with :meth:`apply` only after the transaction commits. Finished runs are
    kept :func:`compact`.
    """

    def __init__(self) -> None:
        self._runs: dict[str, RunState] = {}
        self._partition_of: dict[str, int] = {}

    def get(self, run_id: str) -> RunState | None:
        return self._runs.get(run_id)

    def partition_of(self, run_id: str) -> int | None:
        return self._partition_of.get(run_id)

    def of_partition(self, partition: int) -> dict[str, RunState]:
        """The runs of one partition (a copy)."""
        return {r: self._runs[r] for r, p in self._partition_of.items() if p == partition}

    def states(self) -> list[RunState]:
        return list(self._runs.values())

    def apply(self, changes: Mapping[str, tuple[int, RunState]]) -> None:
        for run_id, (partition, state) in changes.items():
            self._runs[run_id] = compact(state)
            self._partition_of[run_id] = partition

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget the runs of partitions this instance no longer owns; return how many."""
        gone = set(partitions)
        stale = [run for run, p in self._partition_of.items() if p in gone]
        for run_id in stale:
            del self._runs[run_id]
            del self._partition_of[run_id]
        return len(stale)

    def __len__(self) -> int:
        return len(self._runs)
