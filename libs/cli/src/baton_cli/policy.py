"""`baton policy`: validate, publish and test policies (ADR 0910)."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from baton_cli.common import AsJson, fail, load_settings
from baton_cli.governance_ops import in_force, publish_policies, read_policies
from baton_cli.identity import identity_of
from baton_cli.settings import CliSettings
from baton_common.policy import Policy, PolicyDecision, PolicyError, load_policies, parse_policy
from baton_common.policy_rules import denials, evaluate_story, review_needed
from baton_common.story import StoryError, parse_story

__all__ = ["As", "actor_of", "policies_in_force", "policy_app", "print_decisions"]

policy_app = typer.Typer(help="Policies as code: validate, publish, test.", no_args_is_help=True)
Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]
As = Annotated[
    str | None,
    typer.Option("--as", help="who you are (default: BATON_ACTOR, else your login name)"),
]
PoliciesDir = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        exists=True,
        file_okay=False,
        help="judge with the policies in this directory instead of those published",
    ),
]
Team = Annotated[
    str | None, typer.Option("--team", help="the publishing team (default: the story's owner)")
]


def actor_of(config: CliSettings, given: str | None) -> str:
    """Who the CLI acts as: ``--as`` when given, else the user ``BATON_TOKEN`` stands for
    (asked of the audit service's ``/whoami``), else ``BATON_ACTOR`` or the login name.

    Publishing writes to Kafka directly, so Kafka's ACLs are the boundary (ADR 0900); the
    name recorded here is who the publisher says they are, checked when a token is set.
    """
    if given:
        return given
    if config.token:
        return identity_of(config).user
    return config.actor or getpass.getuser()


def policies_in_force(config: CliSettings, directory: Path | None) -> list[Policy]:
    """The policies from ``directory``, or those published on ``baton.policies``."""
    if directory is not None:
        try:
            return load_policies(directory)
        except PolicyError as exc:
            raise fail(str(exc)) from exc
    try:
        return in_force(asyncio.run(read_policies(config.kafka_bootstrap, config.topics)))
    except Exception as exc:
        raise fail(f"cannot read {config.topics.policies}: {exc}") from exc


def _load(files: list[Path]) -> list[tuple[Policy, str]]:
    loaded = []
    for path in files:
        text = path.read_text()
        try:
            loaded.append((parse_policy(text, where=str(path)), text))
        except PolicyError as exc:
            raise fail(str(exc)) from exc
    return loaded


def print_decisions(decisions: list[PolicyDecision]) -> None:
    for d in decisions:
        mark = typer.style("ALLOW", fg=typer.colors.GREEN)
        if d.outcome == "deny":
            mark = typer.style("DENY ", fg=typer.colors.RED, bold=True)
        where = f" [{d.subject}]" if d.subject else ""
        typer.echo(f"  {mark} {d.policy_id} v{d.policy_version}  {d.rule}{where}: {d.reason}")


@policy_app.command("validate")
def policy_validate(files: Files) -> None:
    """Check policy files without publishing them."""
    for (policy, _), path in zip(_load(files), files, strict=True):
        typer.echo(f"{path}: policy {policy.id} version {policy.version} is valid")


@policy_app.command("publish")
def policy_publish(files: Files, as_: As = None) -> None:
    """Publish policy versions to baton.policies; the newest version of each id is in force."""
    config = load_settings()
    try:
        lines = asyncio.run(
            publish_policies(
                config.kafka_bootstrap, config.topics, _load(files), actor_of(config, as_)
            )
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    for line in lines:
        typer.echo(line)


@policy_app.command("list")
def policy_list(as_json: AsJson = False) -> None:
    """The policies in force (newest version of each)."""
    policies = policies_in_force(load_settings(), None)
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in policies], indent=2))
        return
    for p in policies:
        typer.echo(f"{p.id} v{p.version}  {p.description or ''}".rstrip())
    if not policies:
        typer.echo("no policies published: nothing is restricted")


@policy_app.command("test")
def policy_test(
    stories: Files,
    policies: PoliciesDir = None,
    team: Team = None,
    as_json: AsJson = False,
) -> None:
    """What a policy set decides for story files, rule by rule; exit 1 on any deny."""
    config = load_settings()
    judged = policies_in_force(config, policies)
    denied = 0
    report = []
    for path in stories:
        try:
            story = parse_story(path.read_text())
        except StoryError as exc:
            raise fail(f"{path}: {exc}") from exc
        decisions = evaluate_story(judged, story, publisher_team=team)
        refused = denials(decisions)
        denied += len(refused)
        reviewers = review_needed(judged, story)
        if as_json:
            report.append(
                {
                    "story": story.key,
                    "verdict": "deny" if refused else "allow",
                    "reviewers": reviewers,
                    "decisions": [d.model_dump(mode="json") for d in decisions],
                }
            )
            continue
        names = ", ".join(f"{p.id} v{p.version}" for p in judged) or "none"
        typer.echo(f"{path}: {story.key} (owner {story.owner or '-'}), policies: {names}")
        print_decisions(decisions)
        verdict = f"denied ({len(refused)} rule(s))" if refused else "allowed"
        if reviewers and not refused:
            verdict += f"; goes live after {reviewers} approval(s) by someone other than the author"
        typer.echo(f"  verdict: {verdict}")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    if denied:
        raise typer.Exit(1)
