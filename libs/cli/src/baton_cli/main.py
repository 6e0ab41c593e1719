"""The ``baton`` command: a client of the services' APIs and of Kafka."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from baton_cli.http import ApiError, request
from baton_cli.kafka_ops import cancel_run, publish_stories
from baton_cli.settings import CliSettings
from baton_common.story import StoryError, parse_story
from baton_common.topics import provision_topics

app = typer.Typer(help="Baton: Kafka-native workflow orchestration.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
stories_app = typer.Typer(help="Stories: validate and publish.", no_args_is_help=True)
approvals_app = typer.Typer(help="Approval gates.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: history and operations.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(stories_app, name="stories")
app.add_typer(approvals_app, name="approvals")
app.add_typer(runs_app, name="runs")

Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]
AsJson = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]


def _settings() -> CliSettings:
    return CliSettings()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _call(method: str, url: str, **kwargs: Any) -> Any:
    try:
        return request(method, url, **kwargs)
    except ApiError as exc:
        raise _fail(str(exc)) from exc


def _print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@topics_app.command("provision")
def topics_provision() -> None:
    """Create Baton's topics that are missing."""
    settings = _settings()
    try:
        created, present = asyncio.run(provision_topics(settings.kafka_bootstrap, settings.topics))
    except Exception as exc:
        raise _fail(f"provisioning on {settings.kafka_bootstrap} failed: {exc}") from exc
    for name in created:
        typer.echo(f"created {name}")
    typer.echo(f"{len(created)} created, {len(present)} already present")


def _load(files: list[Path]) -> list[tuple[Any, str]]:
    loaded = []
    for path in files:
        text = path.read_text()
        try:
            loaded.append((parse_story(text), text))
        except StoryError as exc:
            raise _fail(f"{path}: {exc}") from exc
    return loaded


@stories_app.command("validate")
def stories_validate(files: Files) -> None:
    """Check story files without publishing them."""
    for (story, _), path in zip(_load(files), files, strict=True):
        typer.echo(f"{path}: {story.id} version {story.version} is valid")


@stories_app.command("publish")
def stories_publish(files: Files) -> None:
    """Publish story versions to baton.stories (immutable: a changed story needs a new version)."""
    settings = _settings()
    stories = _load(files)
    try:
        lines = asyncio.run(publish_stories(settings.kafka_bootstrap, settings.topics, stories))
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    for line in lines:
        typer.echo(line)


@approvals_app.command("list")
def approvals_list(
    state: Annotated[str, typer.Option(help="pending, approved, denied or cancelled")] = "pending",
    as_json: AsJson = False,
) -> None:
    """List approval gates."""
    settings = _settings()
    body = _call(
        "GET", f"{settings.approvals_url}/approvals", token=settings.token, params={"state": state}
    )
    items = body.get("items", body) if isinstance(body, dict) else body
    if as_json:
        _print_json(items)
        return
    if not items:
        typer.echo(f"no {state} approvals")
    for gate in items:
        typer.echo(
            f"{gate['gate_id']}  {gate['state']:<9} {gate['story_id']}/{gate['step']}  "
            f"run {gate['run_id']}  approvers {', '.join(gate['approvers'])}"
        )
        if gate.get("message"):
            typer.echo(f"    {gate['message']}")


@approvals_app.command("show")
def approvals_show(gate_id: str) -> None:
    """Show one approval gate."""
    settings = _settings()
    _print_json(_call("GET", f"{settings.approvals_url}/approvals/{gate_id}", token=settings.token))


def _decide(gate_id: str, decision: str, comment: str | None) -> None:
    settings = _settings()
    if not settings.token:
        raise _fail("set BATON_TOKEN (or --token) to your approvals API token")
    body = _call(
        "POST",
        f"{settings.approvals_url}/approvals/{gate_id}/decision",
        token=settings.token,
        json={"decision": decision, "comment": comment},
    )
    typer.echo(f"{decision} recorded for gate {gate_id} (command {body.get('command_id')})")


Comment = Annotated[str | None, typer.Option("--comment", "-m", help="why")]


@approvals_app.command("approve")
def approvals_approve(gate_id: str, comment: Comment = None) -> None:
    """Approve a pending gate."""
    _decide(gate_id, "approve", comment)


@approvals_app.command("deny")
def approvals_deny(gate_id: str, comment: Comment = None) -> None:
    """Deny a pending gate."""
    _decide(gate_id, "deny", comment)


@runs_app.command("list")
def runs_list(
    story: Annotated[str | None, typer.Option(help="story id")] = None,
    status: Annotated[str | None, typer.Option(help="run status")] = None,
    as_json: AsJson = False,
) -> None:
    """List recent runs from the audit store."""
    settings = _settings()
    params = {k: v for k, v in {"story": story, "status": status}.items() if v}
    body = _call("GET", f"{settings.audit_url}/runs", params=params)
    items = body.get("items", body) if isinstance(body, dict) else body
    if as_json:
        _print_json(items)
        return
    for run in items:
        typer.echo(
            f"{run['run_id']}  {run['status']:<17} {run['story_id']} v{run['story_version']}"
        )


@runs_app.command("show")
def runs_show(run_id: str, as_json: AsJson = False) -> None:
    """Show a run and its ordered timeline."""
    settings = _settings()
    body = _call("GET", f"{settings.audit_url}/runs/{run_id}")
    if as_json:
        _print_json(body)
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
    settings = _settings()
    actor = os.environ.get("USER", "operator")
    command_id = asyncio.run(
        cancel_run(settings.kafka_bootstrap, settings.topics, run_id, reason, actor)
    )
    typer.echo(f"cancel requested for run {run_id} (command {command_id})")


if __name__ == "__main__":
    app()
