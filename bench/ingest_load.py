"""The webhook load generators of ``bench/ingest.py``: Go (one epoll thread) by default, Python as
the fallback (ADR 0261).

Both send the same webhooks (``ingest_webhooks``: distinct, signed, built before the
load starts). With a rate, webhooks fall due at that rate whatever the answers do (an open loop) and
each latency runs from when the webhook fell due; without one, each connection sends
its next webhook when the last is answered (a closed loop).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from ingest_python_load import python_load
from ingest_webhooks import SIGNATURE_HEADER, Load, Webhook

__all__ = ["Generator", "go_binary", "http_load"]

Generator = Literal["go", "python"]

GO_SOURCE = Path(__file__).resolve().parent / "webhook_load"
GO_CACHE = Path(__file__).resolve().parents[1] / ".baton" / "cache" / "webhook_load"


async def http_load(
    generator: Generator,
    ports: list[int],
    webhooks: list[Webhook],
    seconds: float,
    connections: int,
    depth: int = 1,
    rate: float = 0.0,
) -> Load:
    """``webhooks`` sent to ``ports`` by ``generator``: at ``rate`` per second over a pool
    of at most ``connections`` (an open loop), or, with no rate, over ``connections``
    each keeping ``depth`` outstanding (a closed loop; the Go generator sends one at a
    time per connection)."""
    if generator == "go":
        if depth > 1:
            raise SystemExit("--pipeline above 1 needs --generator python")
        return await go_load(ports, webhooks, seconds, connections, rate)
    return await python_load(ports, webhooks, seconds, connections, depth, rate)


def go_binary() -> Path:
    """The Go generator, built into ``.baton/cache`` when its source changed (go prints
    each package it compiles, so a first build's minutes show as progress)."""
    sources = sorted(p for p in GO_SOURCE.iterdir() if p.suffix in (".go", ".mod", ".sum"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    binary = GO_CACHE / digest / "webhook_load"
    if binary.exists():
        return binary
    go = os.environ.get("BATON_GO") or shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists() and shutil.which(go) is None:
        raise SystemExit("the Go load generator needs Go (set BATON_GO), or use --generator python")
    print(f"building the Go load generator into {binary} ...", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # go's own progress goes to this terminal
        [go, "build", "-v", "-o", str(binary), "."], cwd=GO_SOURCE, check=True, stdout=sys.stderr
    )
    return binary


def webhooks_file(webhooks: list[Webhook], into: Path) -> None:
    """``webhooks`` for the Go generator, one JSON object per line."""
    with into.open("w") as out:
        for webhook in webhooks:
            line = {
                "path": "/webhooks/bench",
                "headers": {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: webhook.signature,
                },
                "body": base64.b64encode(webhook.body).decode(),
            }
            out.write(json.dumps(line) + "\n")


async def go_load(
    ports: list[int], webhooks: list[Webhook], seconds: float, connections: int, rate: float
) -> Load:
    """One load from the Go generator (``bench/webhook_load``)."""
    binary = go_binary()
    targets = GO_CACHE / f"webhooks-{os.getpid()}.json"
    webhooks_file(webhooks, targets)
    if rate:  # as the Python generator's pool: each connection used about once a second
        connections = min(connections, max(1, int(rate)))
    try:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "-webhooks",
            str(targets),
            "-addrs",
            ",".join(f"127.0.0.1:{port}" for port in ports),
            "-rate",
            str(round(rate)),
            "-duration",
            f"{seconds}s",
            "-connections",
            str(connections),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GODEBUG": "asyncpreemptoff=1"},  # one goroutine: see main.go
        )
        out, _ = await asyncio.wait_for(process.communicate(), seconds + 120)
    finally:
        targets.unlink(missing_ok=True)
    if process.returncode != 0:
        raise RuntimeError(f"the Go load generator failed ({process.returncode})")
    summary = json.loads(out)
    statuses = {int(code): count for code, count in summary["statuses"].items()}
    if summary["errors"]:
        statuses[0] = sum(summary["errors"].values())  # no answer: shown as status 0
    accepted, cpu = summary["accepted"], (summary["cpu_seconds"], summary["system_cpu_seconds"])
    if not accepted:
        errors = summary["errors"]
        line = f"no request accepted: {statuses} {errors}"
        return Load(line, 0, summary["sent"], float("inf"), *cpu)
    line = (
        f"{accepted / summary['seconds']:8.0f} accepted/s   p50 {summary['p50_ms']:6.1f} ms   "
        f"p99 {summary['p99_ms']:6.1f} ms   statuses {statuses}"
    )
    if rate:
        line += f"   written late: p99 {summary['late_p99_ms']:.1f} ms"
    return Load(line, accepted, summary["sent"], summary["p99_ms"], *cpu)
