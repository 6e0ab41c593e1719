"""phishing-triage end to end at increasing alert rates: how fast the platform finishes runs.

Starts the five services as processes (fresh topic namespace, real Kafka and PostgreSQL)
and the local world in this process, publishes examples/stories/phishing-triage.yaml, and
for each rate streams alerts from the world's EDR console (signed webhooks, a share of
redeliveries, a mix of confident/uncertain/benign scenarios) for ``--seconds``. A scripted
approver approves every pending lockout gate through the approvals API, as alice.

Counted are *completed* runs (RunSucceeded/RunFailed on ``baton.runs``), not started ones.
Per rate it prints runs completed per second, p50/p99 alert-to-completion latency (EDR
send → the run's last event's log time; runs that waited for the approver included), the
in-flight count (sent - completed) at mid-window and at the end, and CPU seconds per
completed run for each service (utime+stime from /proc/<pid>/stat). A rate is *sustained*
when every run completed within the drain time and the lag did not grow: the median
latency of the last third of alerts sent is at most 1.5 x (+1 s) that of the first third
(make the window several times the latency). The highest sustained rate is the answer.

    BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 \
    BATON_DATABASE_URL=postgresql://baton:baton@127.0.0.1:55432/baton \
    .venv/bin/python bench/e2e.py [--rates 2,5,10,20] [--seconds 20] [--duplicates 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from figures import cpu_seconds, percentile  # noqa: E402
from namespaces import drop_namespaces  # noqa: E402
from world_kit import APPROVER, WorldStack, world_stack  # noqa: E402

from baton_common import ids  # noqa: E402
from baton_common.kafka import make_consumer  # noqa: E402

STORY = "phishing-triage"
FINISHED = {b"baton.run.succeeded.v1", b"baton.run.failed.v1"}


@dataclass
class Finished:
    """Run id → its last event's log time (ms), read from ``baton.runs``."""

    at: dict[str, float] = field(default_factory=dict)


async def watch_runs(stack: WorldStack, finished: Finished, stop: asyncio.Event) -> None:
    consumer = make_consumer(
        stack.platform.bootstrap, stack.topics.runs, group_id=None, client_id="bench-e2e"
    )
    await consumer.start()
    try:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_type") in FINISHED:
                        finished.at[headers["ce_subject"].decode()] = record.timestamp / 1000
    finally:
        await consumer.stop()


async def approver(stack: WorldStack, stop: asyncio.Event) -> None:
    """Approve every pending gate, as alice, through the REST API."""
    auth = {"Authorization": f"Bearer {APPROVER}"}
    async with httpx.AsyncClient(base_url=stack.url("approvals"), timeout=30) as client:
        while not stop.is_set():
            listed = await client.get(
                "/approvals", params={"state": "pending", "limit": 500}, headers=auth
            )
            body = listed.json() if listed.status_code == 200 else {"items": []}
            for gate in body["items"] if isinstance(body, dict) else body:
                await client.post(
                    f"/approvals/{gate['gate_id']}/decision",
                    json={"decision": "approve", "comment": "bench approver"},
                    headers=auth,
                )
            await asyncio.sleep(0.2)


async def one_rate(
    stack: WorldStack, finished: Finished, rate: float, seconds: float, args: argparse.Namespace
) -> dict[str, object]:
    pids = {n: s.process.pid for n, s in stack.platform.services.items() if s.process}
    cpu_before = {n: cpu_seconds(p) for n, p in pids.items()}
    count = max(1, round(rate * seconds))
    body = {
        "rate": rate,
        "count": count,
        "duplicates": args.duplicates,
        "seed": int(rate * 1000),
    }
    started = time.time()
    async with httpx.AsyncClient(base_url=stack.world_url, timeout=seconds + 300) as client:
        stream = asyncio.create_task(client.post("/_edr/stream", json=body))
        await asyncio.sleep(seconds / 2)
        sent_mid = rate * seconds / 2 * (1 - args.duplicates)
        done_mid = sum(1 for t in finished.at.values() if t >= started)
        answer = (await stream).json()
    sent_at: dict[str, float] = answer["sent_at"]
    runs = {ids.run_id_for(STORY, alert): at for alert, at in sent_at.items()}
    in_flight_mid = sent_mid - done_mid
    in_flight_end = len(runs) - sum(1 for r in runs if r in finished.at)
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline and any(r not in finished.at for r in runs):  # noqa: ASYNC110
        await asyncio.sleep(0.25)  # the watcher fills finished.at from another task
    done = {r: finished.at[r] for r in runs if r in finished.at}
    latencies = [done[r] - runs[r] for r in done]
    by_send = [done[r] - runs[r] for r in sorted(done, key=runs.__getitem__)]
    third = max(1, len(by_send) // 3)
    early = percentile(by_send[:third], 50) if by_send else float("nan")
    late = percentile(by_send[-third:], 50) if by_send else float("nan")
    # completions per second while they flowed (first to last completion of this rate)
    span = (max(done.values()) - min(done.values())) if len(done) > 1 else float("nan")
    cpu = {n: cpu_seconds(p) - cpu_before[n] for n, p in pids.items()}
    return {
        "rate": rate,
        "sent": answer["sent"],
        "unique": len(runs),
        "completed": len(done),
        "per_second": (len(done) - 1) / span if len(done) > 1 else 0.0,
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p99": percentile(latencies, 99) if latencies else float("nan"),
        "in_flight_mid": in_flight_mid,
        "in_flight_end": in_flight_end,
        "statuses": answer["statuses"],
        "cpu_per_run": {n: c / max(1, len(done)) for n, c in cpu.items()},
        "early_p50": early,
        "late_p50": late,
        # lag grows when the alerts sent last wait longer than those sent first
        "sustained": len(done) == len(runs) and late <= 1.5 * early + 1.0,
    }


def show(result: dict[str, object]) -> None:
    cpu = result["cpu_per_run"]
    assert isinstance(cpu, dict)
    print(
        f"rate {result['rate']:>6}/s  sent {result['sent']:>5} ({result['unique']} unique)  "
        f"completed {result['completed']:>5}  {result['per_second']:.1f} runs/s  "
        f"p50 {result['p50']:.2f}s  p99 {result['p99']:.2f}s  "
        f"in flight mid/end {result['in_flight_mid']:.0f}/{result['in_flight_end']}  "
        f"p50 first/last third {result['early_p50']:.2f}/{result['late_p50']:.2f}s  "
        f"ingest {result['statuses']}  "
        f"{'sustained' if result['sustained'] else 'NOT sustained'}"
    )
    print(
        "    CPU s/run: " + "  ".join(f"{name} {value * 1000:.1f}ms" for name, value in cpu.items())
    )


async def measure(stack: WorldStack, args: argparse.Namespace) -> None:
    finished, stop = Finished(), asyncio.Event()
    tasks = [
        asyncio.create_task(watch_runs(stack, finished, stop)),
        asyncio.create_task(approver(stack, stop)),
    ]
    best = 0.0
    try:
        # warm-up: a few runs through every step, so connections and caches exist
        await one_rate(stack, finished, 1, 3, args)
        for rate in args.rates:
            result = await one_rate(stack, finished, rate, args.seconds, args)
            show(result)
            if not result["sustained"]:
                break
            best = rate
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(f"highest rate sustained without growing lag: {best}/s")


def main(args: argparse.Namespace) -> None:
    bootstrap = os.environ["BATON_KAFKA_BOOTSTRAP"]
    database_url = os.environ["BATON_DATABASE_URL"]
    namespaces: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory() as logs,
            world_stack(bootstrap, database_url, Path(logs), [STORY]) as stack,
        ):
            namespaces.append(stack.platform.namespace)
            asyncio.run(measure(stack, args))
    finally:  # once the services are stopped
        asyncio.run(drop_namespaces(bootstrap, namespaces))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[2, 5, 10, 20, 40]
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="sending window per rate")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of redeliveries")
    parser.add_argument("--drain", type=float, default=60.0, help="wait for runs to finish")
    main(parser.parse_args())
