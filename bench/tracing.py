"""What tracing costs the scheduler: bench/scheduler.py's throughput phase, tracing off then on.

With tracing on, the scheduler process exports every span over OTLP/HTTP to a local sink
(on 127.0.0.1, answering 200 and discarding the spans), as it would to a collector. Prints
both runs' throughput lines and the change in commands/s; figures are printed, never
asserted.

Usage: ``BATON_KAFKA_BOOTSTRAP=127.0.0.1:9092 uv run python bench/tracing.py [--runs 300]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SCHEDULER_BENCH = Path(__file__).with_name("scheduler.py")
RATE = re.compile(r"commands/s:\s*([0-9.]+)")


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


def bench(runs: int, env: dict[str, str]) -> tuple[float | None, str]:
    command = [sys.executable, str(SCHEDULER_BENCH), "--runs", str(runs)]
    command += ["--skip", "recovery", "--latency-seconds", "3"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if "/s:" in line or "p99" in line]
    match = RATE.search(done.stdout)
    return (float(match[1]) if match else None), "\n".join(lines) or done.stdout[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    traced = {**plain, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_port}"}
    try:
        off, off_text = bench(args.runs, plain)
        print(f"tracing off:\n{off_text}")
        on, on_text = bench(args.runs, traced)
        print(f"tracing on (OTLP/HTTP to a local sink, {_Sink.received} exports):\n{on_text}")
    finally:
        sink.shutdown()
    if off and on:
        print(f"tracing changes scheduler throughput by {100 * (on - off) / off:+.1f}%")


if __name__ == "__main__":
    main()
