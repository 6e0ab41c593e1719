"""Which offsets are safe to commit when records of a partition finish out of order."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["OffsetTracker", "Pending"]

P = TypeVar("P", bound=Hashable)


class Pending:
    """One record being worked on; mark it done through :meth:`OffsetTracker.finish`."""

    __slots__ = ("done", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.done = False


class OffsetTracker(Generic[P]):
    """Per partition, the offset below which every record has finished.

    A partition's committable offset never passes a record still running, so a crash
    redelivers every unfinished record (and possibly some finished ones: at-least-once).
    """

    def __init__(self) -> None:
        self._pending: dict[P, deque[Pending]] = {}
        self._finished: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def start(self, partition: P, offset: int) -> Pending:
        """Track a record; records of a partition must be started in offset order."""
        pending = Pending(offset)
        self._pending.setdefault(partition, deque()).append(pending)
        return pending

    def finish(self, pending: Pending) -> None:
        pending.done = True

    def uncommitted(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """Offsets to commit (next offset to read) for partitions that advanced since the
        last :meth:`committed`; only ``partitions`` if given."""
        for partition, queue in self._pending.items():
            while queue and queue[0].done:
                self._finished[partition] = queue.popleft().offset + 1
        wanted = set(partitions) if partitions is not None else None
        return {
            p: offset
            for p, offset in self._finished.items()
            if (wanted is None or p in wanted) and self._committed.get(p) != offset
        }

    def committed(self, offsets: dict[P, int]) -> None:
        """Record a successful commit."""
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop partitions no longer assigned; their running records no longer count."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._finished.pop(partition, None)
            self._committed.pop(partition, None)

    def running(self, partition: P) -> int:
        return sum(1 for p in self._pending.get(partition, ()) if not p.done)
