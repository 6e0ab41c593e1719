"""The floor of one scheduler-shaped Kafka transaction (issue 3, ADR 0181).

Runs ``--transactions`` transactions back to back with the scheduler's producer settings
(``make_producer`` as ``baton_scheduler.main`` builds it, ``txn_retry`` installed): begin,
``send_offsets_to_transaction`` started at once, optionally ``--decide-ms`` of CPU spent
in ``--commands`` slices with the engine's yields (``--yield-ms``, ``--turns-per-yield``;
to compare an idle loop with a deciding one), then ``--records`` records over the output
partitions, commit; ``--gap-ms`` waits between transactions, ``--no-offsets`` leaves the
offsets out. Prints per request type the round trip
(``client.send`` called → answered) and how often it was refused (``AddOffsetsToTxn``:
``CONCURRENT_TRANSACTIONS`` while the previous commit's markers are written), when it was
sent after the transaction began, the transaction's stages, and with ``--turns`` (the
standard asyncio loop, whose ``_run_once`` is counted; uvloop otherwise) how many loop
turns passed from one request's send to the next one's.

Usage: ``BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/txn_floor.py``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from baton_common.kafka import OutboundRecord, make_producer
from baton_scheduler import txn_retry
from baton_scheduler.produce import send_records

TURNS = [0]


def _count_turns() -> None:
    original = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def counted(self: Any) -> None:
        TURNS[0] += 1
        original(self)

    asyncio.BaseEventLoop._run_once = counted  # type: ignore[attr-defined]


class Trace:
    """Every request the producer's client sends: type, start, end, error code."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, int, int]] = []

    def install(self, producer: AIOKafkaProducer) -> None:
        client = producer.client
        original = client.send

        async def send(node_id: int, request: Any, **kw: Any) -> Any:
            started, turn = time.perf_counter(), TURNS[0]
            response = await original(node_id, request, **kw)
            code = getattr(response, "error_code", 0)
            if type(request).__name__.startswith("AddPartitions"):
                code = max((c for _, ps in response.errors for _, c in ps), default=0)
            self.rows.append((type(request).__name__, started, time.perf_counter(), code, turn))
            return response

        client.send = send


def burn(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--decide-ms", type=float, default=0.0)
    parser.add_argument("--commands", type=int, default=9, help="decide steps a transaction")
    parser.add_argument("--yield-ms", type=float, default=0.5)
    parser.add_argument("--turns-per-yield", type=int, default=1)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="wait between transactions")
    parser.add_argument("--turns", action="store_true")
    parser.add_argument("--no-offsets", action="store_true", help="records only")
    args = parser.parse_args()
    bootstrap = os.environ["BATON_KAFKA_BOOTSTRAP"]
    suffix = uuid.uuid4().hex[:6]
    cmd_topic, out_topic = f"floor-cmd-{suffix}", f"floor-out-{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, args.partitions, 1) for t in (cmd_topic, out_topic)])
    await admin.close()
    txn_retry.install()
    producer = make_producer(
        bootstrap,
        client_id="floor",
        transactional_id=f"floor-{suffix}",
        linger_ms=0,
        retry_backoff_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    trace = Trace()
    trace.install(producer)
    # warm up: metadata, coordinators
    async with producer.transaction():
        await producer.send_offsets_to_transaction(
            {TopicPartition(cmd_topic, 0): 1}, f"floor-g-{suffix}"
        )
        await producer.send_and_wait(out_topic, b"x", key=b"k")
    trace.rows.clear()
    tx_marks: list[tuple[float, float, float, float, float]] = []
    offset = 1
    for i in range(args.transactions):
        offset += 3
        offsets = {TopicPartition(cmd_topic, p): offset for p in range(args.partitions)}
        outs = [
            OutboundRecord(out_topic, f"run-{i}-{n}".encode(), b"v" * 300, [], None)
            for n in range(args.records)
        ]
        begun = time.perf_counter()
        async with producer.transaction():
            added = asyncio.ensure_future(
                asyncio.sleep(0)
                if args.no_offsets
                else producer.send_offsets_to_transaction(offsets, f"floor-g-{suffix}")
            )
            if args.decide_ms > 0:
                per = args.decide_ms / args.commands
                yielded = 0.0
                for _ in range(args.commands):
                    every = 0.002 if added.done() else args.yield_ms / 1000
                    if (now := time.perf_counter()) - yielded >= every:
                        for _ in range(args.turns_per_yield):
                            await asyncio.sleep(0)
                        yielded = now
                    burn(per)
            decided = time.perf_counter()
            await added
            offsets_in = time.perf_counter()
            await send_records(producer, outs)
            produced = time.perf_counter()
        tx_marks.append((begun, decided, offsets_in, produced, time.perf_counter()))
        if args.gap_ms:
            await asyncio.sleep(args.gap_ms / 1000)
    await producer.stop()
    report(trace.rows, tx_marks)


def report(
    rows: list[tuple[str, float, float, int, int]],
    marks: list[tuple[float, float, float, float, float]],
) -> None:
    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    def line(name: str, xs: list[float]) -> None:
        if xs:
            print(
                f"  {name:<28} n={len(xs):4d} mean {statistics.fmean(xs):6.2f}"
                f"  p50 {pct(xs, 0.5):6.2f}  p90 {pct(xs, 0.9):6.2f}  p99 {pct(xs, 0.99):6.2f}"
            )

    print("per request: round trip ms (client.send -> response)")
    by: dict[str, list[float]] = defaultdict(list)
    refused: dict[str, int] = defaultdict(int)
    for name, start, end, code, _ in rows:
        by[name].append((end - start) * 1000)
        refused[name] += code != 0
    for name, xs in by.items():
        line(f"{name} (refused {refused[name]})", xs)
    # when each request went out, relative to its transaction's begin
    print("per request: sent after the transaction began, ms")
    sent: dict[str, list[float]] = defaultdict(list)
    j = 0
    for begun, _, _, _, end in marks:
        while j < len(rows) and rows[j][1] < begun:
            j += 1
        while j < len(rows) and rows[j][1] < end:
            sent[rows[j][0]].append((rows[j][1] - begun) * 1000)
            j += 1
    for name, xs in sent.items():
        line(name, xs)
    stage = defaultdict(list)
    for begun, decided, offsets_in, produced, end in marks:
        stage["decide"].append((decided - begun) * 1000)
        stage["offsets wait"].append((offsets_in - decided) * 1000)
        stage["offsets from begin"].append((offsets_in - begun) * 1000)
        stage["produce"].append((produced - offsets_in) * 1000)
        stage["commit"].append((end - produced) * 1000)
        stage["cycle"].append((end - begun) * 1000)
    print("per transaction, ms")
    for name, xs in stage.items():
        line(name, xs)
    if TURNS[0]:
        # loop turns between consecutive requests of a transaction (answer -> next send)
        gaps: dict[str, list[float]] = defaultdict(list)
        for k in range(1, len(rows)):
            gaps[f"{rows[k - 1][0][:-7]}->{rows[k][0][:-7]}"].append(rows[k][4] - rows[k - 1][4])
        print("loop turns between consecutive request sends")
        for name, xs in sorted(gaps.items(), key=lambda kv: -len(kv[1]))[:8]:
            line(name, xs)


if __name__ == "__main__":
    import sys

    if "--turns" in sys.argv:
        _count_turns()
        asyncio.run(main())
    else:
        import uvloop

        uvloop.run(main())
