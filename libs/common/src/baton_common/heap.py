"""The collector's settings for a long-running service (ADRs 0120, 0330, 0340, 0550).

What start-up built (modules, models, clients, recovered run states) lives as long as
the process: once frozen, no full collection walks it again. The hot paths (a batch of
records, the attempts in flight) free what they make by reference counting and make few
cycles, so Python's default young threshold (a collection every 700 objects of net
growth) walks their objects dozens of times for nothing; a service may raise it.
"""

from __future__ import annotations

import gc
import time
from typing import NamedTuple

import structlog

__all__ = ["Settled", "release_heap", "settle_heap"]

log = structlog.get_logger(__name__)


class Settled(NamedTuple):
    """What ``settle_heap`` changed, for ``release_heap`` to give back."""

    thresholds: tuple[int, int, int]


def settle_heap(young_threshold: int = 0, *, what: str = "start-up") -> Settled:
    """Collect once and freeze every object alive, then collect the young generation only
    after ``young_threshold`` objects of net growth (0: leave the thresholds as they are)."""
    started = time.process_time()
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    if young_threshold:
        gc.set_threshold(young_threshold, before[1], before[2])
    log.info(
        "heap settled",
        after=what,
        frozen_objects=gc.get_freeze_count(),
        gc_threshold=gc.get_threshold()[0],
        cpu_seconds=round(time.process_time() - started, 3),
    )
    return Settled(before)


def release_heap(settled: Settled) -> None:
    """Give the collector back what ``settle_heap`` took (an app stopped inside a process
    that goes on, such as the tests)."""
    gc.unfreeze()
    gc.set_threshold(*settled.thresholds)
