"""What tracing costs the scheduler: bench/scheduler.py's throughput phase, tracing off and on.

With tracing on, the scheduler process exports every span over OTLP/HTTP to a local sink
(a process of its own on 127.0.0.1, answering 200 and discarding the spans), as it would
to a collector. Figures are printed, never asserted.

On a shared 2-core machine one off/on pair says little: commands/s swings by ±15 % between
runs of the same arm. So ``--rounds`` runs the arms in rounds whose order alternates
(off, on, on, off, ...) so drift in the machine's load falls on both arms alike, and
prints per round and as medians both commands/s and the scheduler process's CPU ms per
command (all threads, and its event-loop thread apart from the others: the export thread
works off the loop). CPU per command is the steadier of the two. ``--baseline DIR`` adds
the same two arms run from another checkout (its ``.venv`` and ``bench/scheduler.py``), so
a change is measured back to back against, say, main.

``--decide`` measures instead the scheduler's whole decide path without Kafka
(``bench/scheduler_decide.py``: ``Engine.handle`` and the store's apply, in this process),
tracing off and on in alternating passes: CPU per command of all threads (the export
thread's encoding and posting included, as the sink receives every span) and of this
thread, and Python calls per command off and on (cProfile, exact). Run it with another
checkout's ``.venv/bin/python`` to measure that checkout's code.

``--isolated`` measures instead, in this process and without Kafka, the CPU the tracing
work of one scheduler command costs (its span, the envelope copy carrying the span's
``traceparent``, and encoding and exporting the span): off, an OpenTelemetry SDK span
(what the scheduler did before ADR 0810) and a hot span, interleaved in rounds.

Usage: ``BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/tracing.py --runs 1000
--rounds 4 [--baseline ../main]`` or ``uv run python bench/tracing.py --isolated``
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # scheduler_decide, for --decide
RATE = re.compile(r"commands/s:\s*([0-9.]+)")
CPU = re.compile(
    r"CPU ms/command:\s*([0-9.]+).*event loop thread ([0-9.]+), other threads ([0-9.]+)"
)


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def serve_sink() -> None:
    """The OTLP sink (``--sink``): prints its port, serves until stdin closes."""
    import threading

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    print(sink.server_port, flush=True)
    sys.stdin.read()
    sink.shutdown()


def start_sink() -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    return sink, f"http://127.0.0.1:{sink.stdout.readline().strip()}"


@dataclass
class Arm:
    """One way of running the scheduler bench: which checkout, tracing off or on."""

    name: str
    tree: Path
    env: dict[str, str]
    rates: list[float] = field(default_factory=list)
    cpu: list[tuple[float, float, float]] = field(default_factory=list)  # all, loop, others

    def run(self, runs: int, profile: bool) -> str:
        python = self.tree / ".venv" / "bin" / "python"
        command = [str(python), str(self.tree / "bench" / "scheduler.py"), "--runs", str(runs)]
        command += ["--skip", "recovery", "--latency-seconds", "3"]
        command += ["--profile-scheduler"] if profile else []
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=900, cwd=self.tree
        )
        if rate := RATE.search(done.stdout):
            self.rates.append(float(rate[1]))
        if cpu := CPU.search(done.stdout):
            self.cpu.append((float(cpu[1]), float(cpu[2]), float(cpu[3])))
        if profile:
            return done.stdout
        lines = [line for line in done.stdout.splitlines() if "/s:" in line or "/command" in line]
        return "\n".join(lines) or (done.stdout + done.stderr)[-2000:]


def _spread(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    shown = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"median {statistics.median(values):.{digits}f} ({shown})"


def _paired(off: list[float], on: list[float]) -> list[float]:
    """The change on/off of each round, in %."""
    return [100 * (b - a) / a for a, b in zip(off, on, strict=False) if a]


def summary(arms: list[Arm]) -> None:
    print("\nper arm (medians, then each round):")
    for arm in arms:
        print(f"  {arm.name}:")
        print(f"    commands/s:          {_spread(arm.rates, 0)}")
        print(f"    CPU ms/command:      {_spread([c[0] for c in arm.cpu], 3)}")
        print(f"      event-loop thread: {_spread([c[1] for c in arm.cpu], 3)}")
        print(f"      other threads:     {_spread([c[2] for c in arm.cpu], 3)}")
    for off, on in zip(arms[::2], arms[1::2], strict=True):
        tree = off.name.removesuffix(" off")
        rates = _paired(off.rates, on.rates)
        cpu = _paired([c[0] for c in off.cpu], [c[0] for c in on.cpu])
        loop = _paired([c[1] for c in off.cpu], [c[1] for c in on.cpu])
        print(f"{tree}: tracing on vs off, per round (%):")
        print(f"  commands/s:                {_spread(rates, 1)}")
        print(f"  scheduler CPU ms/command:  {_spread(cpu, 1)}")
        print(f"  event-loop CPU ms/command: {_spread(loop, 1)}")
        if off.rates and on.rates:
            before, after = statistics.median(off.rates), statistics.median(on.rates)
            change = 100 * (after - before) / before
            print(f"  medians of commands/s: {before:.0f} -> {after:.0f} ({change:+.1f}%)")


def isolated(endpoint: str, commands: int, rounds: int) -> None:
    """CPU µs per command of the scheduler's tracing work alone, per way of tracing."""
    from baton_common import telemetry
    from baton_common.envelope import Envelope

    # a checkout before ADR 0820 (run with its own .venv/bin/python) copies with pydantic
    replaced: Callable[[Envelope, dict[str, Any]], Envelope] = getattr(
        importlib.import_module("baton_common.trusted"),
        "replaced",
        lambda model, update: model.model_copy(update=update),
    )

    parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="baton.step.complete.v1",
        source="bench",
        time=datetime.now(UTC),
        traceparent=parent,
        data={"run_id": "r", "step": "s"},
    )

    def sdk_span(attributes: dict[str, str]) -> None:  # the scheduler before ADR 0810
        with telemetry.span("baton.scheduler.decide", parent=parent, attributes=attributes):
            if telemetry.tracing_enabled():
                envelope.model_copy(update={"traceparent": telemetry.current_traceparent(parent)})

    def hot_span(attributes: dict[str, str]) -> None:  # the scheduler's engine now
        with telemetry.hot_span(
            "baton.scheduler.decide", parent=parent, attributes=attributes
        ) as traceparent:
            if traceparent != parent:
                replaced(envelope, {"traceparent": traceparent})

    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    ways: dict[str, tuple[Callable[[dict[str, str]], None], dict[str, str]]] = {
        "off": (hot_span, {}),
        "sdk span": (sdk_span, traced),
        "hot span": (hot_span, traced),
    }
    spent: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, (step, env) in ways.items():
            telemetry.configure_tracing("scheduler", env)
            began = time.process_time(), time.thread_time()
            for n in range(commands):
                step({"baton.run_id": f"run-{n}", "baton.command": "baton.step.complete.v1"})
            hot_path = time.thread_time() - began[1]
            telemetry.shutdown_tracing()  # flushes: every span is encoded and sent
            spent[way].append(
                (1e6 * (time.process_time() - began[0]) / commands, 1e6 * hot_path / commands)
            )
    print("µs CPU per command: all threads (this thread's hot path; the rest is export)")
    for way, figures in spent.items():
        everything = statistics.median(f[0] for f in figures)
        hot = statistics.median(f[1] for f in figures)
        shown = ", ".join(f"{f[0]:.1f}" for f in figures)
        print(f"{way:>9}: {everything:6.1f} ({hot:5.1f} hot path)  rounds: {shown}")


def decide(endpoint: str, runs: int, rounds: int) -> None:
    """CPU and Python calls per command of the scheduler's decide path, tracing off and on."""
    import asyncio
    import cProfile
    import pstats

    import scheduler_decide

    from baton_common import telemetry
    from baton_common.service import configure_logging

    configure_logging("bench", "WARNING")  # as the service runs
    records = scheduler_decide.commands(runs)
    envs = {"off": {}, "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}}

    def one_pass(
        env: dict[str, str], profile: cProfile.Profile | None = None
    ) -> tuple[float, float]:
        telemetry.configure_tracing("scheduler", env)
        began = time.process_time(), time.thread_time()
        if profile is not None:
            profile.enable()
        asyncio.run(scheduler_decide.one_pass(records, 30))
        if profile is not None:
            profile.disable()
        loop = time.thread_time() - began[1]
        telemetry.shutdown_tracing()  # flushes: every span is encoded and sent
        per = 1e6 / len(records)
        return per * (time.process_time() - began[0]), per * loop

    spent: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for n in range(rounds):
        for way in ("off", "on") if n % 2 == 0 else ("on", "off"):
            spent[way].append(one_pass(envs[way]))
    calls = {}
    for way, env in envs.items():
        profile = cProfile.Profile()
        one_pass(env, profile)
        calls[way] = pstats.Stats(profile).total_calls / len(records)  # type: ignore[attr-defined]
    print(f"decide path, {len(records)} commands a pass, {rounds} passes each, alternating:")
    for way, figures in spent.items():
        print(
            f"  {way:>3}: CPU µs/command all threads {_spread([f[0] for f in figures], 1)}"
            f"\n       this thread {_spread([f[1] for f in figures], 1)}"
            f"\n       Python calls/command {calls[way]:.1f}"
        )
    change = _paired([f[0] for f in spent["off"]], [f[0] for f in spent["on"]])
    print(f"  on vs off, all threads, per round (%): {_spread(change, 1)}")
    off, on = (statistics.median(f[0] for f in spent[way]) for way in ("off", "on"))
    print(f"  medians: {off:.1f} -> {on:.1f} µs/command ({100 * (on - off) / off:+.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of every arm, order alternating"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout (with its .venv) to run the same arms from"
    )
    parser.add_argument(
        "--profile-scheduler", action="store_true", help="print the scheduler's cProfile"
    )
    parser.add_argument(
        "--isolated", action="store_true", help="the tracing work per command alone, no Kafka"
    )
    parser.add_argument(
        "--decide", action="store_true", help="the decide path without Kafka, tracing off/on"
    )
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        serve_sink()
        return
    sink, endpoint = start_sink()
    try:
        if args.isolated:
            isolated(endpoint, 5_000, max(args.rounds, 3))
            return
        if args.decide:
            decide(endpoint, args.runs, max(args.rounds, 6))
            return
        plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        traced = {**plain, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        trees = [("this tree", HERE.parent)]
        if args.baseline is not None:
            trees.append((f"baseline {args.baseline}", args.baseline.resolve()))
        arms = [
            Arm(f"{label} {way}", tree, env)
            for label, tree in trees
            for way, env in (("off", plain), ("on", traced))
        ]
        for n in range(args.rounds):
            for arm in arms if n % 2 == 0 else arms[::-1]:
                text = arm.run(args.runs, args.profile_scheduler)
                print(
                    f"round {n + 1}, {arm.name} ({time.strftime('%H:%M:%S')}):\n{text}", flush=True
                )
        summary(arms)
    finally:
        sink.communicate("")


if __name__ == "__main__":
    main()
