"""What tracing costs the scheduler: bench/scheduler.py's throughput phase, tracing off then on.

With tracing on, the scheduler process exports every span over OTLP/HTTP to a local sink
(on 127.0.0.1, answering 200 and discarding the spans), as it would to a collector. Prints
both runs' throughput lines and the change in commands/s; figures are printed, never
asserted.

``--isolated`` measures instead, in this process and without Kafka, the CPU the tracing
work of one scheduler command costs (its span, the envelope copy carrying the span's
``traceparent``, and exporting the span to the sink): off, an OpenTelemetry SDK span (what
the scheduler did before ADR 0810) and a hot span, interleaved in rounds.

Usage: ``BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/tracing.py [--runs 300]``
or ``uv run python bench/tracing.py --isolated``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SCHEDULER_BENCH = Path(__file__).with_name("scheduler.py")
RATE = re.compile(r"commands/s:\s*([0-9.]+)")
CPU = re.compile(r"CPU ms/command:\s*([0-9.]+)")


class _Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


class Figures:
    """Commands/s and scheduler CPU ms per command of the runs of one arm (off or on)."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.cpu: list[float] = []

    def add(self, output: str) -> None:
        if rate := RATE.search(output):
            self.rates.append(float(rate[1]))
        if cpu := CPU.search(output):
            self.cpu.append(float(cpu[1]))


def bench(runs: int, env: dict[str, str], profile: bool) -> str:
    command = [sys.executable, str(SCHEDULER_BENCH), "--runs", str(runs)]
    command += ["--skip", "recovery", "--latency-seconds", "3"]
    command += ["--profile-scheduler"] if profile else []
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if profile:
        return done.stdout
    lines = [line for line in done.stdout.splitlines() if "/s:" in line or "/command" in line]
    lines += [line for line in done.stdout.splitlines() if "p99" in line]
    return "\n".join(lines) or done.stdout[-2000:]


def isolated(endpoint: str, commands: int, rounds: int) -> None:
    """CPU µs per command of the scheduler's tracing work alone, per way of tracing."""
    from baton_common import telemetry
    from baton_common.envelope import Envelope
    from baton_common.trusted import replaced

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

    ways = {
        "off": (hot_span, {}),
        "sdk span": (sdk_span, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}),
    }
    ways["hot span"] = (hot_span, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    spent: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, (step, env) in ways.items():
            telemetry.configure_tracing("scheduler", env)
            began = time.process_time()  # all threads: the exporter's encoding counts
            for n in range(commands):
                step({"baton.run_id": f"run-{n}", "baton.command": "baton.step.complete.v1"})
            telemetry.shutdown_tracing()  # flushes: every span is encoded and sent
            spent[way].append(1e6 * (time.process_time() - began) / commands)
    for way, figures in spent.items():
        shown = ", ".join(f"{f:.1f}" for f in figures)
        print(f"{way:>9}: {statistics.median(figures):6.1f} µs CPU/command (rounds: {shown})")


def change(off: list[float], on: list[float]) -> str:
    if not off or not on:
        return "n/a"
    before, after = statistics.median(off), statistics.median(on)
    return f"{before:.3f} -> {after:.3f} ({100 * (after - before) / before:+.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=1, help="off/on pairs, run back to back (medians)"
    )
    parser.add_argument(
        "--profile-scheduler", action="store_true", help="print the scheduler's cProfile"
    )
    parser.add_argument(
        "--isolated", action="store_true", help="the tracing work per command alone, no Kafka"
    )
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    traced = {**plain, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_port}"}
    if args.isolated:
        try:
            isolated(traced["OTEL_EXPORTER_OTLP_ENDPOINT"], 5_000, max(args.rounds, 3))
        finally:
            sink.shutdown()
        return
    off, on = Figures(), Figures()
    try:
        for _ in range(args.rounds):
            text = bench(args.runs, plain, args.profile_scheduler)
            off.add(text)
            print(f"tracing off:\n{text}")
            text = bench(args.runs, traced, args.profile_scheduler)
            on.add(text)
            print(f"tracing on (OTLP/HTTP to a local sink, {_Sink.received} exports):\n{text}")
    finally:
        sink.shutdown()
    print(f"commands/s (median of {args.rounds}): {change(off.rates, on.rates)}")
    print(f"scheduler CPU ms/command (median): {change(off.cpu, on.cpu)}")


if __name__ == "__main__":
    main()
