"""Commands fetched ahead of the batch that will decide them (ADR 0180).

aiokafka fetches from a broker again only once every record fetched from it has been
taken, so a command loop that takes records only between batches leaves the commands
arriving during a batch at the broker until the next batch has begun: they waited for two
batches before their own. The loop therefore takes what has been fetched after deciding
and after the produce (:func:`gather`) and holds it here, which lets the consumer fetch
again at once; the next batch takes it in fetch order per partition. Not at every yield
while deciding, nor after the offsets (mostly in by then): each take that finds records
starts another fetch (CPU), and a command arriving then cannot join the batch anyway.

The consumer's position runs ahead of the records decided; a transaction still commits
the offsets of its own batch's records only. Whoever seeks the consumer drops what is held
for that partition first, without awaiting in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from baton_common.kafka import ConsumedRecord, Fetched

__all__ = ["HeldCommands", "gather", "reassigning"]


class HeldCommands:
    """Fetched records per partition, in offset order, not yet in a batch."""

    def __init__(self) -> None:
        self._held: Fetched = {}
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, fetched: Mapping[TopicPartition, Sequence[ConsumedRecord]]) -> None:
        for tp, records in fetched.items():
            self._held.setdefault(tp, []).extend(records)
            self.count += len(records)

    def take(self, limit: int) -> Fetched:
        """At most ``limit`` records; a partition's rest stays held, behind the others."""
        taken: Fetched = {}
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


async def gather(consumer: AIOKafkaConsumer, held: HeldCommands, *, up_to: int) -> None:
    """Hold what ``consumer`` has fetched so far, without waiting, while fewer than
    ``up_to`` records are held and no rebalance is under way (aiokafka's ``getmany`` then
    waits for the new assignment, which a batch in the middle of its transaction must not)."""
    room = up_to - held.count
    if room > 0 and not reassigning(consumer):
        held.add(await consumer.getmany(timeout_ms=0, max_records=room))


def reassigning(consumer: AIOKafkaConsumer) -> bool:
    """Whether ``consumer`` has no settled assignment (aiokafka's own flag)."""
    subscription = getattr(consumer, "_subscription", None)
    return bool(getattr(subscription, "reassignment_in_progress", False))
