"""A batch of decided commands waiting for, or in, its transaction (ADR 0181), and the
clock of its stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from aiokafka import TopicPartition

from baton_common.kafka import ConsumedRecord, Fetched, OutboundRecord
from baton_common.state import RunState
from baton_scheduler import metrics

__all__ = ["Decided", "StageClock", "Staged"]

log = structlog.get_logger(__name__)

Staged = dict[str, tuple[int, RunState]]


@dataclass
class Decided:
    """Commands decided, in offset order per partition, with the records they produce and
    the run states they leave (``staged``); none of it committed yet."""

    records: Fetched = field(default_factory=dict)
    outs: list[OutboundRecord] = field(default_factory=list)
    staged: Staged = field(default_factory=dict)
    count: int = 0
    started: float = field(default_factory=time.perf_counter)
    deciding: float = 0.0  # seconds spent deciding its commands

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, tp: TopicPartition, record: ConsumedRecord, outs: list[OutboundRecord]) -> None:
        """One more command decided, and the records it produces."""
        self.records.setdefault(tp, []).append(record)
        self.outs.extend(outs)
        self.count += 1

    def offsets(self) -> dict[TopicPartition, int]:
        """The consumer offsets committing this batch moves to."""
        return {tp: records[-1].offset + 1 for tp, records in self.records.items()}


class StageClock:
    """Times the stages of one batch's transaction (``baton_scheduler_batch_stage_seconds``;
    a debug log line per batch)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._laps[stage] = now - self._last
        self._last = now

    def record(self, *, decide: float, **sizes: int) -> None:
        self._laps = {"decide": decide, **self._laps}
        for stage, seconds in self._laps.items():
            metrics.BATCH_STAGE_SECONDS.labels(stage).observe(seconds)
        log.debug(
            "batch committed",
            **sizes,
            **{f"{stage}_ms": round(s * 1000, 1) for stage, s in self._laps.items()},
        )
