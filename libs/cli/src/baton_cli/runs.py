"""`baton runs`: history from the audit store, and operator commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError

from baton_cli.common import AsJson, call, fail, load_settings, print_json
from baton_common.envelope import Envelope
from baton_common.events import EVENT_ADAPTER
from baton_common.state import RunState, evolve

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
    run_id: str,
    reason: Annotated[str, typer.Option(help="why the run is stopped")],
    compensate: Annotated[
        bool,
        typer.Option(
            "--compensate", help="undo the completed steps (their `compensate`) before stopping"
        ),
    ] = False,
) -> None:
    """Ask the scheduler to cancel a run (and its sub-story runs).

    Needs the ``operator`` role on the team owning the run's story; the scheduler records
    the caller of ``BATON_TOKEN`` as who asked.
    """
    config = load_settings()
    body = call(
        "POST",
        f"{config.scheduler_url}/runs/{run_id}/cancel",
        json={"reason": reason, "compensate": compensate},
    )
    undo = " with compensation" if compensate else ""
    typer.echo(
        f"cancel{undo} requested for run {run_id} by {body['requested_by']} "
        f"(command {body['command_id']})"
    )


def state_at(envelopes: list[Envelope], at: str | None) -> tuple[RunState | None, int]:
    """Fold a run's events up to ``at`` (a seq, or an ISO time) with the scheduler's ``evolve``.

    Returns the state and how many events it covers.

    Raises:
        ValueError: if ``at`` is neither a number nor an ISO 8601 time.
    """
    limit_seq: int | None = None
    limit_time: datetime | None = None
    if at is not None:
        if at.isdigit():
            limit_seq = int(at)
        else:
            limit_time = datetime.fromisoformat(at)
            if limit_time.tzinfo is None:
                raise ValueError(f"{at!r} has no time zone: add Z or +00:00")
    state: RunState | None = None
    applied = 0
    for envelope in envelopes:
        if limit_seq is not None and (envelope.seq or 0) > limit_seq:
            break
        if limit_time is not None and envelope.time > limit_time:
            break
        try:
            event = EVENT_ADAPTER.validate_python(envelope.data)
        except ValidationError:
            continue  # a newer event type: it cannot change a state this version knows
        state = evolve(
            state, event, seq=envelope.seq or 0, hash=envelope.hash or "", time=envelope.time
        )
        applied += 1
    return state, applied


@runs_app.command("state")
def runs_state(
    run_id: str,
    at: Annotated[
        str | None, typer.Option(help="a seq number, or an ISO 8601 time (default: now)")
    ] = None,
) -> None:
    """Reconstruct a run's state as of a point in its history (time travel)."""
    config = load_settings()
    body = call("GET", f"{config.audit_url}/runs/{run_id}/events")
    envelopes = [Envelope.model_validate(item) for item in body["items"]]
    try:
        state, applied = state_at(envelopes, at)
    except ValueError as exc:
        raise fail(f"--at {at}: {exc}") from exc
    if state is None:
        raise fail(f"run {run_id} has no state at {at}: it had not started")
    typer.echo(f"# run {run_id} after {applied} of {len(envelopes)} events (seq {state.seq})")
    print_json(state.model_dump(mode="json"))
