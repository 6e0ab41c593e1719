"""`baton approvals`: list, show and decide approval gates."""

from __future__ import annotations

from typing import Annotated

import typer

from baton_cli.common import AsJson, call, fail, load_settings, print_json

approvals_app = typer.Typer(help="Approval gates.", no_args_is_help=True)


@approvals_app.command("list")
def approvals_list(
    state: Annotated[str, typer.Option(help="pending, approved, denied or cancelled")] = "pending",
    as_json: AsJson = False,
) -> None:
    """List approval gates."""
    config = load_settings()
    body = call(
        "GET", f"{config.approvals_url}/approvals", token=config.token, params={"state": state}
    )
    items = body.get("items", body) if isinstance(body, dict) else body
    if as_json:
        print_json(items)
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
    config = load_settings()
    print_json(call("GET", f"{config.approvals_url}/approvals/{gate_id}", token=config.token))


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
    """Approve a pending gate."""
    _decide(gate_id, "approve", comment)


@approvals_app.command("deny")
def approvals_deny(gate_id: str, comment: Comment = None) -> None:
    """Deny a pending gate."""
    _decide(gate_id, "deny", comment)
