"""The scheduler's in-memory run states, grouped by the partition that owns each run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from baton_common.state import RunState
from baton_scheduler.snapshot import state_json

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
    kept :func:`compact` and as their snapshot JSON (ADR 0150): bytes, which the cyclic
    garbage collector does not walk (a state is a handful of containers it would walk on
    every full collection) and which a snapshot writes as they are. Reading one back
    (a late command, dedup, the API) parses it.
    """

    def __init__(self) -> None:
        self._running: dict[str, RunState] = {}
        self._finished: dict[str, bytes] = {}
        self._partition_of: dict[str, int] = {}

    def get(self, run_id: str) -> RunState | None:
        state = self._running.get(run_id)
        if state is not None:
            return state
        encoded = self._finished.get(run_id)
        return None if encoded is None else RunState.model_validate_json(encoded)

    def partition_of(self, run_id: str) -> int | None:
        return self._partition_of.get(run_id)

    def of_partition(self, partition: int) -> dict[str, bytes]:
        """The runs of one partition as their snapshot JSON (a copy): a finished run's
        is kept, a running run's is written now."""
        return {
            r: self._finished[r] if r in self._finished else state_json(self._running[r])
            for r, p in self._partition_of.items()
            if p == partition
        }

    def running(self) -> list[RunState]:
        """The runs not finished yet (the only ones holding timers)."""
        return list(self._running.values())

    def apply(self, changes: Mapping[str, tuple[int, RunState]]) -> None:
        for run_id, (partition, state) in changes.items():
            if state.finished:
                self._finished[run_id] = state_json(compact(state))
                self._running.pop(run_id, None)
            else:
                self._running[run_id] = state
            self._partition_of[run_id] = partition

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget the runs of partitions this instance no longer owns; return how many."""
        gone = set(partitions)
        stale = [run for run, p in self._partition_of.items() if p in gone]
        for run_id in stale:
            self._running.pop(run_id, None)
            self._finished.pop(run_id, None)
            del self._partition_of[run_id]
        return len(stale)

    def __len__(self) -> int:
        return len(self._partition_of)
