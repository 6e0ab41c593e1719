"""`baton world`: drive the local world of outside systems (examples/world) from the CLI.

The world is where ``make up`` runs the EDR console, the identity provider, Slack and the
other systems the reference stories talk to. These commands ask its EDR console to send
alerts into Baton, and show what Baton did to the world.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
import typer

from baton_cli.common import AsJson, call, fail, print_json
from baton_common import ids

__all__ = ["parse_rate", "parse_share", "world_app"]

world_app = typer.Typer(help="The local world (examples/world): send alerts, show recorded calls.")

WorldUrl = Annotated[
    str, typer.Option("--world-url", envvar="BATON_WORLD_URL", help="the world's address")
]
_RATE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?:/\s*(?P<unit>s|sec|m|min))?\s*$")


def parse_rate(text: str) -> float:
    """``20/s``, ``600/m`` or ``20`` → alerts per second."""
    found = _RATE.match(text)
    if found is None or float(found["n"]) <= 0:
        raise fail(f"--rate {text!r}: write a positive number per second or minute, e.g. 20/s")
    per_minute = found["unit"] in ("m", "min")
    return float(found["n"]) / (60 if per_minute else 1)


def parse_share(text: str) -> float:
    """``10%`` or ``0.1`` → 0.1."""
    try:
        share = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        share = -1.0
    if not 0 <= share < 1:
        raise fail(f"--duplicates {text!r}: write a share below 100 %, e.g. 10%")
    return share


@world_app.command("alerts")
def alerts(
    world_url: WorldUrl = "http://127.0.0.1:8090",
    rate: Annotated[str, typer.Option(help="alerts per second (20/s) or minute (600/m)")] = "20/s",
    duplicates: Annotated[str, typer.Option(help="share redelivered (10%)")] = "10%",
    count: Annotated[int, typer.Option(min=1, help="how many deliveries")] = 100,
    scenario: Annotated[
        list[str] | None, typer.Option(help="scenario to draw from (repeatable; default mix)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the scenario and duplicate draws")] = 1,
    as_json: AsJson = False,
) -> None:
    """Stream phishing alerts from the world's EDR console into Baton (signed webhooks)."""
    body: dict[str, Any] = {
        "rate": parse_rate(rate),
        "duplicates": parse_share(duplicates),
        "count": count,
        "seed": seed,
    }
    if scenario:
        body["scenarios"] = scenario
    try:  # one long request: the world answers when the last alert is acknowledged
        answer = httpx.post(
            f"{world_url}/_edr/stream", json=body, timeout=count / body["rate"] + 120
        )
    except httpx.HTTPError as exc:
        raise fail(
            f"cannot reach the world at {world_url}: {exc!r} (is `make up` running?)"
        ) from exc
    if answer.status_code != 200:
        raise fail(f"the world answered {answer.status_code}: {answer.text}")
    summary = answer.json()
    if as_json:
        print_json(summary)
        return
    typer.echo(
        f"sent {summary['sent']} alerts in {summary['seconds']}s "
        f"({summary['unique']} unique, {summary['duplicates']} redelivered); "
        f"ingest answered {summary['statuses']}"
    )


@world_app.command("send")
def send(
    scenario: Annotated[
        str, typer.Argument(help="confident | confident-clicked | uncertain | benign")
    ] = "uncertain",
    user: Annotated[str | None, typer.Option(help="the targeted user's email")] = None,
    world_url: WorldUrl = "http://127.0.0.1:8090",
    as_json: AsJson = False,
) -> None:
    """Send one phishing alert; print its alert id, phishing-triage run id and gate id."""
    body: dict[str, Any] = {"scenario": scenario}
    if user is not None:
        body["user"] = user
    sent = call("POST", f"{world_url}/_edr/alerts", json=body)
    if as_json:
        print_json(sent)
        return
    if sent.get("status") != 202:
        raise fail(
            f"ingest answered {sent.get('status')}: {sent.get('ingest') or sent.get('error')}"
        )
    alert_id = sent["alert_id"]
    run_id = ids.run_id_for("phishing-triage", alert_id)
    # Shell assignments, so `eval "$(baton world send …)"` sets $RUN and $GATE.
    typer.echo(f"# alert {alert_id} for {sent['alert']['user']} accepted by ingest (202)")
    typer.echo(f"ALERT={alert_id}")
    typer.echo(f"RUN={run_id}")
    typer.echo(f"GATE={ids.gate_id(run_id, 'lockout_approval')}  # if a lockout is recommended")


@world_app.command("calls")
def calls(
    service: Annotated[
        str | None, typer.Option(help="idp, email, cases, slack, llm, reputation, risk, siem, hr")
    ] = None,
    contains: Annotated[str | None, typer.Option(help="only calls mentioning this text")] = None,
    world_url: WorldUrl = "http://127.0.0.1:8090",
    as_json: AsJson = False,
) -> None:
    """What Baton did to the world: every call the world received, oldest first."""
    params = {k: v for k, v in {"service": service, "contains": contains}.items() if v}
    found = call("GET", f"{world_url}/_calls", params=params)
    if as_json:
        print_json(found)
        return
    for item in found["calls"]:
        key = item.get("idempotency_key") or "-"
        effect = item.get("effect") or {}
        shown = {k: v for k, v in effect.items() if k != "answer"}
        typer.echo(
            f"{item['seq']:>5} {item['method']:<6} {item['path']:<60} {item['status']} "
            f"key={key} {shown if shown else ''}".rstrip()
        )


@world_app.command("press")
def press(
    gate_id: Annotated[str, typer.Argument(help="the gate whose Slack message to press")],
    decision: Annotated[str, typer.Argument(help="approve | deny")],
    user: Annotated[str, typer.Option(help="the Slack user pressing (U0ALICE, U0BOB)")] = (
        "U0ALICE"
    ),
    comment: Annotated[str | None, typer.Option("-m", help="why (typed in the deny modal)")] = None,
    world_url: WorldUrl = "http://127.0.0.1:8090",
) -> None:
    """Press Approve or Deny on the gate's message in the world's Slack, as a person would.

    The world sends the approvals service the signed callback Slack would send.
    """
    if decision not in ("approve", "deny"):
        raise fail(f"decision {decision!r}: approve or deny")
    body = {"gate_id": gate_id, "action": decision, "user": user, "comment": comment}
    result = call("POST", f"{world_url}/_slack/press", json=body)
    answer = result.get("modal") or result["press"]
    if answer["status"] != 200 or '"ok":false' in answer["body"].replace(" ", ""):
        raise fail(f"approvals answered {answer['status']}: {answer['body']}")
    typer.echo(f"{user} pressed {decision} in Slack; approvals answered {answer['status']}")
