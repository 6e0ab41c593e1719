"""`baton runs`: history from the audit store, and operator commands."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from baton_cli.common import AsJson, call, load_settings, print_json
from baton_cli.kafka_ops import cancel_run

runs_app = typer.Typer(help="Runs: history and operations.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    story: Annotated[str | None, typer.Option(help="story id")] = None,
    status: Annotated[str | None, typer.Option(help="run status")] = None,
    as_json: AsJson = False,
) -> None:
    """List recent runs from the audit store."""
    config = load_settings()
    params = {k: v for k, v in {"story": story, "status": status}.items() if v}
    body = call("GET", f"{config.audit_url}/runs", params=params)
    items = body.get("items", body) if isinstance(body, dict) else body
    if as_json:
        print_json(items)
        return
    for run in items:
        typer.echo(
            f"{run['run_id']}  {run['status']:<17} {run['story_id']} v{run['story_version']}"
        )


@runs_app.command("show")
def runs_show(run_id: str, as_json: AsJson = False) -> None:
    """Show a run and its ordered timeline."""
    config = load_settings()
    body = call("GET", f"{config.audit_url}/runs/{run_id}")
    if as_json:
        print_json(body)
        return
    run = body["run"]
    typer.echo(f"run {run['run_id']}  {run['status']}  {run['story_id']} v{run['story_version']}")
    for event in body["timeline"]:
        data = event.get("data") or {}
        detail = " ".join(
            f"{k}={data[k]}"
            for k in ("step", "attempt", "approver", "reason")
            if data.get(k) is not None
        )
        actor = f" by {event['actor']}" if event.get("actor") else ""
        typer.echo(f"  {event['seq'] or '-':>3}  {event['time']}  {event['type']}{actor}  {detail}")


@runs_app.command("cancel")
def runs_cancel(
    run_id: str, reason: Annotated[str, typer.Option(help="why the run is stopped")]
) -> None:
    """Ask the scheduler to cancel a run."""
    config = load_settings()
    actor = os.environ.get("USER", "operator")
    command_id = asyncio.run(
        cancel_run(config.kafka_bootstrap, config.topics, run_id, reason, actor)
    )
    typer.echo(f"cancel requested for run {run_id} (command {command_id})")
