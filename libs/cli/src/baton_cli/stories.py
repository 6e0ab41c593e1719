"""`baton stories`: validate and publish story versions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from baton_cli.common import fail, load_settings
from baton_cli.kafka_ops import publish_stories
from baton_common.story import StoryError, parse_story

stories_app = typer.Typer(help="Stories: validate and publish.", no_args_is_help=True)
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
def stories_publish(files: Files) -> None:
    """Publish story versions to baton.stories (immutable: a changed story needs a new version)."""
    config = load_settings()
    stories = _load(files)
    try:
        lines = asyncio.run(publish_stories(config.kafka_bootstrap, config.topics, stories))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    for line in lines:
        typer.echo(line)
