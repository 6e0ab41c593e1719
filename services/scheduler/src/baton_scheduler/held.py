"""Commands fetched ahead of the batch that will decide them (ADR 0180).

The command loop takes what the consumer has fetched at each stage of a batch and holds
it here; the next batch takes it in fetch order per partition. Whoever seeks the
consumer drops what is held for that partition first, without awaiting in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition

from baton_common.kafka import ConsumedRecord

__all__ = ["Batches", "HeldCommands"]

Batches = dict[TopicPartition, list[ConsumedRecord]]


class HeldCommands:
    """Fetched records per partition, in offset order, not yet in a batch."""

    def __init__(self) -> None:
        self._held: Batches = {}
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, fetched: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        for tp, records in fetched.items():
            self._held.setdefault(tp, []).extend(records)
            self.count += len(records)

    def take(self, limit: int) -> Batches:
        """At most ``limit`` records; a partition's rest stays held, behind the others."""
        taken: Batches = {}
        for tp in list(self._held):
            if limit <= 0:
                break
            records = self._held.pop(tp)
            taken[tp], rest = records[:limit], records[limit:]
            limit -= len(taken[tp])
            self.count -= len(taken[tp])
            if rest:
                self._held[tp] = rest
        return taken

    def drop(self, partition: TopicPartition) -> None:
        self.count -= len(self._held.pop(partition, ()))

    def drop_partitions(self, partitions: set[int]) -> None:
        for tp in [tp for tp in self._held if tp.partition in partitions]:
            self.drop(tp)
