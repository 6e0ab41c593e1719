"""The collector's settings for the projection (ADR 0550).

A batch holds its records' envelopes, events and rows until it is written (up to a
poll's share of ``BATON_AUDIT_BATCH_RECORDS``), and kept run rows live for many batches.
With Python's default threshold (a young-generation collection every 700 objects of net
growth) a batch of a thousand records set off dozens of collections, each walking the
batch's objects again and promoting them, so they also set off full collections: about
a third of the projection's CPU. The projection makes no reference cycles of its own
(models, dicts, lists and tuples, freed by their reference counts), so collecting far
less often costs only the delay in freeing others' cycles.
"""

from __future__ import annotations

import gc
import time

import structlog

__all__ = ["settle_heap"]

log = structlog.get_logger(__name__)


def settle_heap(threshold: int) -> None:
    """Collect once and freeze what start-up built (modules, models, clients: alive as long
    as the process, never walked again), then collect the young generation only after
    ``threshold`` objects of net growth (0: Python's default)."""
    started = time.process_time()
    gc.collect()
    gc.freeze()
    if threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(threshold, middle, old)
    log.info(
        "heap settled",
        frozen_objects=gc.get_freeze_count(),
        gc_threshold=gc.get_threshold()[0],
        cpu_seconds=round(time.process_time() - started, 3),
    )
