"""`baton stories`: validate, publish and approve story versions.

Publishing judges each new version against the policies in force (ADR 0910): a denial
refuses it; change control publishes it as a draft that goes live once someone other
than its author runs ``baton stories approve`` (ADR 0911).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from baton_cli.common import fail, load_settings
from baton_cli.governance_ops import publish_approval, read_approvals
from baton_cli.kafka_ops import publish_stories, read_published
from baton_cli.policy import As, PoliciesDir, Team, actor_of, policies_in_force, print_decisions
from baton_common.policy import PolicyDecision
from baton_common.policy_rules import denials, evaluate_story, review_needed
from baton_common.records import StoryApproved
from baton_common.story import Story, StoryError, parse_story

stories_app = typer.Typer(help="Stories: validate, publish, approve.", no_args_is_help=True)
Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]


def _load(files: list[Path]) -> list[tuple[Any, str]]:
    loaded = []
    for path in files:
        text = path.read_text()
        try:
            loaded.append((parse_story(text), text))
        except StoryError as exc:
            raise fail(f"{path}: {exc}") from exc
    return loaded


@stories_app.command("validate")
def stories_validate(files: Files) -> None:
    """Check story files without publishing them."""
    for (story, _), path in zip(_load(files), files, strict=True):
        typer.echo(f"{path}: {story.id} version {story.version} is valid")


@stories_app.command("publish")
def stories_publish(
    files: Files, as_: As = None, team: Team = None, policies: PoliciesDir = None
) -> None:
    """Publish story versions to baton.stories (immutable: a changed story needs a new
    version), judged by the policies in force."""
    config = load_settings()
    stories = _load(files)
    author = actor_of(config, as_)
    judged = policies_in_force(config, policies)
    existing = asyncio.run(read_published(config.kafka_bootstrap, config.topics))
    for story, _ in stories:
        if story.key in existing:
            continue  # unchanged (or refused below as changed): not judged again
        refused = denials(evaluate_story(judged, story, publisher_team=team))
        if refused:
            typer.secho(f"{story.key} refused by policy:", fg=typer.colors.RED, err=True)
            print_decisions(refused)
            raise typer.Exit(1)

    def judge(story: Story) -> tuple[int, list[PolicyDecision]]:
        return review_needed(judged, story), evaluate_story(judged, story, publisher_team=team)

    try:
        lines = asyncio.run(
            publish_stories(
                config.kafka_bootstrap, config.topics, stories, author=author, judge=judge
            )
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    for line in lines:
        typer.echo(line)


@stories_app.command("approve")
def stories_approve(
    key: Annotated[str, typer.Argument(help="the draft version, as <story id>:<version>")],
    as_: As = None,
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="why")] = None,
) -> None:
    """Approve a draft story version (change control): it goes live once enough people
    other than its author approved it."""
    config = load_settings()
    approver = actor_of(config, as_)
    story_id, _, version_text = key.rpartition(":")
    if not story_id or not version_text.isdigit():
        raise fail(f"{key!r}: give the version as <story id>:<version>, e.g. hello-approval:2")
    published = asyncio.run(read_published(config.kafka_bootstrap, config.topics)).get(key)
    if published is None:
        raise fail(f"{key} is not published")
    if not published.draft:
        raise fail(f"{key} is not a draft: it went live when it was published")
    if published.author == approver:
        raise fail(
            f"{approver} is the author of {key}: change control needs an approval by someone "
            "other than the author"
        )
    earlier = asyncio.run(read_approvals(config.kafka_bootstrap, config.topics))
    others = {
        a.approver
        for a in earlier
        if f"{a.story_id}:{a.version}" == key and a.approver != published.author
    }
    if approver in others:
        raise fail(f"{approver} already approved {key}")
    approval = StoryApproved(
        story_id=story_id,
        version=int(version_text),
        approver=approver,
        author=published.author,
        comment=comment,
    )
    asyncio.run(publish_approval(config.kafka_bootstrap, config.topics, approval))
    count = len(others) + 1
    state = "live" if count >= max(1, published.reviewers) else "still a draft"
    typer.echo(
        f"{key} approved by {approver} ({count} of {published.reviewers} approval(s)): {state}"
    )
