"""`baton approvals`: list, show and decide approval gates, and see decided history."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from baton_cli.common import AsJson, call, fail, load_settings, print_json

approvals_app = typer.Typer(help="Approval gates.", no_args_is_help=True)


class StateChoice(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    DECIDED = "decided"
    ALL = "all"


State = Annotated[
    StateChoice,
    typer.Option(help="a gate state, `decided` for every closed gate, or `all`"),
]
Group = Annotated[str | None, typer.Option(help="only gates naming group:<GROUP>")]
Mine = Annotated[bool, typer.Option("--mine", help="only gates you may decide")]
Limit = Annotated[int, typer.Option(min=1, max=500, help="at most this many gates")]


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"


def _line(gate: dict[str, Any]) -> str:
    outcome = gate["state"]
    if gate.get("decided_by"):
        outcome += f" by {gate['decided_by']}"
    return (
        f"{gate['gate_id']}  {outcome:<9} {gate['story_id']}/{gate['step']}  "
        f"run {gate['run_id']}  approvers {', '.join(gate['approvers'])}"
    )


def _list(state: StateChoice, group: str | None, mine: bool, limit: int, as_json: bool) -> None:
    config = load_settings()
    params: dict[str, Any] = {"limit": limit}
    if state is not StateChoice.ALL:
        params["state"] = state.value
    if group:
        params["group"] = group
    if mine:
        params["mine"] = "true"
    body = call("GET", f"{config.approvals_url}/approvals", token=config.token, params=params)
    items = body.get("items", []) if isinstance(body, dict) else body
    if as_json:
        print_json(items)
        return
    if not items:
        typer.echo(f"no {'' if state is StateChoice.ALL else state.value + ' '}approvals")
    for gate in items:
        typer.echo(_line(gate))
        if gate.get("message"):
            typer.echo(f"    {gate['message']}")
        if gate.get("comment"):
            typer.echo(f"    comment: {gate['comment']}")


@approvals_app.command("list")
def approvals_list(
    state: State = StateChoice.PENDING,
    group: Group = None,
    mine: Mine = False,
    limit: Limit = 50,
    as_json: AsJson = False,
) -> None:
    """List approval gates (pending by default)."""
    _list(state, group, mine, limit, as_json)


@approvals_app.command("history")
def approvals_history(
    group: Group = None, mine: Mine = False, limit: Limit = 50, as_json: AsJson = False
) -> None:
    """Decided gates, most recently closed first."""
    _list(StateChoice.DECIDED, group, mine, limit, as_json)


@approvals_app.command("show")
def approvals_show(gate_id: str, as_json: AsJson = False) -> None:
    """Show one approval gate and every decision asked for on it."""
    config = load_settings()
    gate = call("GET", f"{config.approvals_url}/approvals/{gate_id}", token=config.token)
    if as_json:
        print_json(gate)
        return
    typer.echo(f"gate {gate['gate_id']}  {gate['state']}")
    typer.echo(f"  story     {gate['story_id']} v{gate['story_version']} / {gate['step']}")
    typer.echo(f"  run       {gate['run_id']}")
    typer.echo(f"  approvers {', '.join(gate['approvers'])}")
    typer.echo(f"  opened    {_when(gate['opened_at'])}")
    if gate.get("message"):
        typer.echo(f"  message   {gate['message']}")
    if gate["state"] != "pending":
        by = f" by {gate['decided_by']}" if gate.get("decided_by") else ""
        typer.echo(f"  closed    {_when(gate.get('closed_at'))}{by}")
        if gate.get("comment"):
            typer.echo(f"  comment   {gate['comment']}")
    decisions = gate.get("decisions") or []
    if decisions:
        typer.echo("  decisions:")
    for d in decisions:
        said = f": {d['comment']}" if d.get("comment") else ""
        typer.echo(
            f"    {_when(d['requested_at'])}  {d['approver']} asked to {d['decision']}"
            f" via {d['channel']}{said}"
        )


def _decide(gate_id: str, decision: str, comment: str | None) -> None:
    config = load_settings()
    if not config.token:
        raise fail("set BATON_TOKEN to your approvals API token")
    body = call(
        "POST",
        f"{config.approvals_url}/approvals/{gate_id}/decision",
        token=config.token,
        json={"decision": decision, "comment": comment},
    )
    typer.echo(f"{decision} recorded for gate {gate_id} (command {body.get('command_id')})")


Comment = Annotated[str | None, typer.Option("--comment", "-m", help="why")]


@approvals_app.command("approve")
def approvals_approve(gate_id: str, comment: Comment = None) -> None:
    """Approve a pending gate (the scheduler closes it once its rules are met)."""
    _decide(gate_id, "approve", comment)


@approvals_app.command("deny")
def approvals_deny(gate_id: str, comment: Comment = None) -> None:
    """Deny a pending gate."""
    _decide(gate_id, "deny", comment)
