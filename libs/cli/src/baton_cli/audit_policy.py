"""`baton audit policy-decisions`: what policies allowed and denied, from the audit store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from baton_cli.common import AsJson, call, load_settings, print_json

__all__ = ["policy_decisions"]

Outcome = Annotated[str | None, typer.Option(help="allow or deny")]
When = Annotated[datetime | None, typer.Option(help="ISO 8601 time")]


def policy_decisions(
    policy: Annotated[str | None, typer.Option(help="policy id")] = None,
    version: Annotated[int | None, typer.Option(help="policy version")] = None,
    outcome: Outcome = None,
    story: Annotated[str | None, typer.Option(help="story id")] = None,
    rule: Annotated[str | None, typer.Option(help="e.g. actions.http.hosts")] = None,
    since: When = None,
    until: When = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: AsJson = False,
) -> None:
    """Policy decisions recorded in the log, newest first (e.g. what policy default v2
    denied last month: --policy default --version 2 --outcome deny --since … --until …)."""
    params: dict[str, Any] = {
        "policy_id": policy,
        "policy_version": version,
        "outcome": outcome,
        "story_id": story,
        "rule": rule,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "limit": limit,
    }
    config = load_settings()
    body = call(
        "GET",
        f"{config.audit_url}/policy-decisions",
        params={k: v for k, v in params.items() if v is not None},
    )
    if as_json:
        print_json(body["items"])
        return
    for d in body["items"]:
        where = f" [{d['step']}]" if d.get("step") else ""
        typer.echo(
            f"{d['time']}  {d['outcome'].upper():5}  {d['policy_id']} v{d['policy_version']}  "
            f"{d['story_id']} {d['run_id']}{where}  {d['rule']}: {d['reason']}"
        )
    if not body["items"]:
        typer.echo("no decisions match")
