"""Runs started per story in the last minute, for policies' ``rate_limits`` (ADR 0910).

Counted by this scheduler instance from the runs it started (by their commands' log
times), so with several instances each counts its own partitions' runs: the limit is
per instance, an approximation the ADR accepts. The count reaches the pure decider as
data in its ``Context``.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Final

__all__ = ["StartWindow"]

WINDOW: Final = timedelta(minutes=1)


class StartWindow:
    def __init__(self) -> None:
        self._starts: dict[str, deque[datetime]] = {}

    def count(self, story_id: str, now: datetime) -> int:
        """Runs of ``story_id`` started in the minute before ``now``."""
        starts = self._starts.get(story_id)
        if not starts:
            return 0
        while starts and starts[0] <= now - WINDOW:
            starts.popleft()
        return len(starts)

    def note(self, story_id: str, at: datetime) -> None:
        self._starts.setdefault(story_id, deque()).append(at)
