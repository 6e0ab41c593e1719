"""Webhook records gathered into one producer batch per partition (ADR 0250).

``AIOKafkaProducer.send`` costs a coroutine, a metadata wait, a partitioner call, an
accumulator lookup and a delivery future per record, and each webhook then waited on its
own timer. Concurrent webhooks write to a handful of partitions (the key is the webhook
path), so :class:`GatheredSends` appends their records to one open batch builder per
partition (aiokafka's public ``create_batch``) and hands it to the producer
(``send_batch``) as one batch with one delivery future; each caller waits on a plain
future of its own, settled when that batch is acknowledged (``acks=all``) or fails, or
when the batch's deadline passes.

When a batch is handed over follows aiokafka's own accumulator: a partition's open batch
waits ``linger`` for company, and while an earlier batch of that partition is still
awaiting its ack it keeps gathering (as aiokafka's next batch does while a produce
request is in flight); a batch that is full goes at once. ADR 0220's attempt handed a
closed batch over every loop turn, and those small batches queued behind each other.

aiokafka keeps one produce request in flight per broker connection, so a batch waits for
the previous one's ack. With more producers (``more``: lanes, each its own connection) a
partition has as many batches in flight, each on the lane with the fewest (ADR 0260). A
batch holding the rest of a caller's records goes on the lane of the batch holding their
start while that one is in flight: one connection keeps a partition's batches in order,
two would not.

A batch whose deadline passes before it was handed over is dropped: its callers get
``TimeoutError`` (503) and none of its records is written. After hand-over a timeout
cannot take a record back (it may still be written, as before).
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from baton_common.kafka import PRODUCE_SECONDS, OutboundRecord
from baton_common.metrics import labelled
from baton_common.partition_batches import partition_of

__all__ = ["GatheredSends", "outcomes"]

_Partition = tuple[str, int]
_KNOWN_SECONDS = 60.0  # how long a topic's partitions and the keys' choices are reused


class _Batch:
    """One partition's open or handed-over batch and the callers waiting on it."""

    __slots__ = ("after", "builder", "deadline", "handed", "lane", "ripe", "tp", "waiters")

    def __init__(self, tp: _Partition, builder: BatchBuilder) -> None:
        self.tp = tp
        self.builder = builder
        self.waiters: list[asyncio.Future[None]] = []
        self.ripe = False  # lingered long enough to go
        self.handed = False
        self.deadline: asyncio.TimerHandle | None = None
        self.after: _Batch | None = None  # holds the start of a caller's records in this one
        self.lane = -1  # the producer it was handed to; -1 before, or once settled

    def settle(self, error: BaseException | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        for waiter in self.waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(copy.copy(error))


async def outcomes(waits: list[tuple[asyncio.Future[None], int]]) -> list[BaseException | None]:
    """For each record of ``waits`` (futures, each settling that many records), None once
    acknowledged, else the error."""
    results: list[BaseException | None] = []
    for waiter, count in waits:
        try:
            await waiter
            outcome: BaseException | None = None
        except Exception as exc:
            outcome = exc
        results.extend([outcome] * count)
    return results


class GatheredSends:
    """Sends records of concurrent callers a partition batch at a time (see the module)."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        linger: float,
        more: Sequence[AIOKafkaProducer] = (),
    ) -> None:
        self._producer = producer
        self._lanes = (producer, *more)
        self._linger = linger
        self._open: dict[_Partition, _Batch] = {}
        self._on_lane: dict[_Partition, list[int]] = {}  # handed over, not yet settled, per lane
        self._partitions: dict[str, list[int]] = {}
        self._chosen: dict[tuple[str, bytes], int] = {}
        self._known_until = 0.0
        self._loop = asyncio.get_running_loop()
        self._submitting: set[asyncio.Future[None]] = set()

    async def deliver(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[BaseException | None]:
        """Send ``records``; for each, None once acknowledged, else why it is not.

        ``within`` (seconds) bounds the wait from the moment a record's batch was opened.
        """
        waits = self.hand(records, within)
        if waits is None:  # a topic's partitions are not known yet: ask for them
            try:
                partitions = [(record.topic, await self._partition(record)) for record in records]
            except Exception as exc:  # no metadata for the topic: nothing was sent
                return [exc] * len(records)
            waits = self._gather(records, partitions, within)
        return await outcomes(waits)

    def hand(
        self, records: Sequence[OutboundRecord], within: float
    ) -> list[tuple[asyncio.Future[None], int]] | None:
        """``deliver`` without a coroutine (the webhook fast path, ADR 0263): append
        ``records`` to their partitions' batches now and return the futures to wait on,
        each with the number of consecutive records it settles; None, with nothing sent,
        when a record's partition needs the topic's metadata first (``deliver`` waits)."""
        partitions: list[_Partition] = []
        for record in records:
            partition = self._known_partition(record)
            if partition is None:
                return None
            partitions.append((record.topic, partition))
        return self._gather(records, partitions, within)

    def _gather(
        self, records: Sequence[OutboundRecord], partitions: list[_Partition], within: float
    ) -> list[tuple[asyncio.Future[None], int]]:
        waits: list[tuple[asyncio.Future[None], int]] = []
        joined: _Batch | None = None
        for record, tp in zip(records, partitions, strict=True):
            batch = self._open.get(tp)
            if batch is None:
                batch = self._new(tp, within)
            if not self._append(batch, record):
                self._hand_over(batch)  # full: it goes now
                full, batch = batch, self._new(tp, within)
                if full is joined:  # this caller's records go on in the next batch
                    batch.after = full
                self._append(batch, record)  # an empty builder takes any record
            if batch is joined:
                waiter, count = waits[-1]
                waits[-1] = (waiter, count + 1)
            else:
                waiter = self._loop.create_future()
                batch.waiters.append(waiter)
                waits.append((waiter, 1))
                joined = batch
        return waits

    def _known_partition(self, record: OutboundRecord) -> int | None:
        """``_partition`` when it needs no metadata request, else None."""
        if record.partition is not None:
            return record.partition
        if self._loop.time() >= self._known_until:
            return None
        partitions = self._partitions.get(record.topic)
        if partitions is None:
            return None
        key = record.key
        if key is None:
            return random.choice(partitions)
        chosen = self._chosen.get((record.topic, key))
        if chosen is None:
            chosen = self._chosen[record.topic, key] = partition_of(key, partitions)
        return chosen

    async def _partition(self, record: OutboundRecord) -> int:
        """The record's own partition, else the default partitioner's choice (murmur2 of
        the key, cached per key along with the topic's partitions for a minute)."""
        if record.partition is not None:
            return record.partition
        now = self._loop.time()
        if now >= self._known_until:  # the topic may have grown: look again
            self._partitions.clear()
            self._chosen.clear()
            self._known_until = now + _KNOWN_SECONDS
        key = record.key
        if key is None:  # any partition, as the default partitioner does
            return random.choice(await self._partitions_of(record.topic))
        chosen = self._chosen.get((record.topic, key))
        if chosen is None:
            chosen = partition_of(key, await self._partitions_of(record.topic))
            self._chosen[record.topic, key] = chosen  # one per webhook path and minute
        return chosen

    async def _partitions_of(self, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(
                await self._producer.partitions_for(topic)
            )
        return partitions

    def _append(self, batch: _Batch, record: OutboundRecord) -> bool:
        appended = batch.builder.append(
            timestamp=None, key=record.key, value=record.value, headers=record.headers
        )
        return appended is not None

    def _new(self, tp: _Partition, timeout: float) -> _Batch:
        batch = _Batch(tp, self._producer.create_batch())
        self._open[tp] = batch
        batch.deadline = self._loop.call_later(timeout, self._expire, batch)
        if self._linger > 0:
            self._loop.call_later(self._linger, self._lingered, batch)
        else:  # the records of this loop turn go together
            self._loop.call_soon(self._lingered, batch)
        return batch

    def _lingered(self, batch: _Batch) -> None:
        batch.ripe = True
        if self._open.get(batch.tp) is batch and self._lane_free(batch.tp):
            self._hand_over(batch)

    def _lane_free(self, tp: _Partition) -> bool:
        return sum(self._on_lane.get(tp, ())) < len(self._lanes)

    def _hand_over(self, batch: _Batch) -> None:
        if self._open.get(batch.tp) is batch:
            del self._open[batch.tp]
        batch.handed = True
        loads = self._on_lane.setdefault(batch.tp, [0] * len(self._lanes))
        after, batch.after = batch.after, None
        if after is not None and after.lane >= 0:  # the start of its records is in flight
            batch.lane = after.lane
        else:
            batch.lane = loads.index(min(loads))
        loads[batch.lane] += 1
        task = asyncio.ensure_future(self._submit(batch))
        self._submitting.add(task)
        task.add_done_callback(self._submitting.discard)

    async def _submit(self, batch: _Batch) -> None:
        topic, partition = batch.tp
        started = time.perf_counter()
        try:
            lane = self._lanes[batch.lane]
            delivery = await lane.send_batch(batch.builder, topic, partition=partition)
            await delivery
        except Exception as exc:
            batch.settle(exc)
        else:
            batch.settle(None)
            labelled(PRODUCE_SECONDS, topic).observe(time.perf_counter() - started)
        finally:
            self._on_lane[batch.tp][batch.lane] -= 1
            batch.lane = -1
            waiting = self._open.get(batch.tp)
            if waiting is not None and waiting.ripe and self._lane_free(batch.tp):
                self._hand_over(waiting)

    def _expire(self, batch: _Batch) -> None:
        """The batch's deadline passed: its callers get TimeoutError; if it was not handed
        over yet, it never will be."""
        if self._open.get(batch.tp) is batch:
            del self._open[batch.tp]
        batch.deadline = None
        batch.settle(TimeoutError())
