"""`baton top`: a live terminal view of the platform, read from the services' ``/metrics``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Annotated

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from baton_cli.common import load_settings
from baton_cli.top_figures import SERVICES, Frame, Samples, Scrape, figures, parse_metrics

__all__ = ["render", "scrape", "top"]


def metrics_urls() -> dict[str, str]:
    """Each service's ``/metrics`` URL, from the CLI's settings."""
    config = load_settings()
    bases = {
        "ingest": config.ingest_url,
        "scheduler": config.scheduler_url,
        "executor": config.executor_url,
        "approvals": config.approvals_url,
        "audit": config.audit_url,
    }
    return {s: f"{bases[s].rstrip('/')}/metrics" for s in SERVICES}


async def _scrape_one(client: httpx.AsyncClient, url: str) -> Samples | None:
    try:
        response = await client.get(url)
        response.raise_for_status()
        return parse_metrics(response.text)
    except (httpx.HTTPError, ValueError):
        return None  # down, refusing, or not a metrics endpoint: shown as "down"


async def scrape(urls: Mapping[str, str], wait: float = 2.0) -> Scrape:
    """Every service's ``/metrics`` at once; a service that does not answer is ``None``."""
    async with httpx.AsyncClient(timeout=wait) as client:
        found = await asyncio.gather(*(_scrape_one(client, url) for url in urls.values()))
    return Scrape(at=time.monotonic(), services=dict(zip(urls, found, strict=True)))


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    shown = f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.1f}"
    return f"{shown}{unit}"


def _figure(frame: Frame, service: str, value: float | None, unit: str = "") -> Text:
    if not frame.up.get(service, False):
        return Text("down", style="bold red")
    return Text(_num(value, unit))


def render(frame: Frame) -> Group:
    """The frame as rich renderables: services, figures and consumer lag."""
    services = Text("  ").join(
        Text(f"{s} {'up' if up else 'down'}", style="green" if up else "bold red")
        for s, up in frame.up.items()
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("area", "figure", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    rows = [
        ("intake", "webhooks accepted", "ingest", frame.webhooks_per_s, "/s"),
        ("intake", "webhooks rejected", "ingest", frame.webhooks_rejected_per_s, "/s"),
        ("intake", "runs requested (routed)", "ingest", frame.routed_per_s, "/s"),
        ("runs", "in flight", "scheduler", frame.runs_in_flight, ""),
        ("runs", "started", "scheduler", frame.runs_started_per_s, "/s"),
        ("runs", "finished", "scheduler", frame.runs_finished_per_s, "/s"),
        ("runs", "failed", "scheduler", frame.runs_failed_per_s, "/s"),
        ("approvals", "pending", "scheduler", frame.approvals_pending, ""),
        ("scheduler", "commands", "scheduler", frame.commands_per_s, "/s"),
        ("scheduler", "commands rejected", "scheduler", frame.commands_rejected_per_s, "/s"),
        ("steps", "attempts", "executor", frame.step_attempts_per_s, "/s"),
        ("steps", "errors", "executor", frame.step_errors_per_s, "/s"),
        ("steps", "running", "executor", frame.steps_running, ""),
    ]
    for area, name, service, value, unit in rows:
        table.add_row(area, name, _figure(frame, service, value, unit))
    dlq = "—" if frame.dlq_records is None else _num(frame.dlq_records)
    dlq_style = "bold red" if frame.dlq_records else ""
    table.add_row("errors", "DLQ records (total)", Text(dlq, style=dlq_style))
    table.add_row("errors", "DLQ records", Text(_num(frame.dlq_per_s, "/s")))
    for consumer, behind in frame.lag.items():
        table.add_row("lag", consumer, Text(_num(behind, " records")))
    if not frame.lag:
        table.add_row("lag", "(no consumer reporting)", Text("—"))
    every = "first scrape" if frame.interval is None else f"rates over {frame.interval:.1f}s"
    return Group(services, Text(every, style="dim"), table)


def frame_json(frame: Frame) -> str:
    return json.dumps(dataclasses.asdict(frame), indent=2, sort_keys=True)


def top(
    interval: Annotated[float, typer.Option(help="seconds between scrapes", min=0.1)] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="print one frame (two scrapes) and exit")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --once: the frame as JSON")] = False,
) -> None:
    """A live view of intake, runs, approvals, steps, errors and consumer lag."""
    urls = metrics_urls()
    if once:
        first = asyncio.run(scrape(urls))
        time.sleep(interval)
        frame = figures(first, asyncio.run(scrape(urls)))
        if as_json:
            typer.echo(frame_json(frame))
        else:
            Console().print(render(frame))
        return
    previous = asyncio.run(scrape(urls))
    try:
        with Live(render(figures(None, previous)), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                current = asyncio.run(scrape(urls))
                live.update(render(figures(previous, current)), refresh=True)
                previous = current
    except KeyboardInterrupt:
        return
