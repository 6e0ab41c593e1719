"""`baton topics`: Kafka topic provisioning."""

from __future__ import annotations

import asyncio

import typer

from baton_cli.common import fail, load_settings
from baton_common.topics import provision_topics

topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)


@topics_app.command("provision")
def topics_provision() -> None:
    """Create Baton's topics that are missing."""
    config = load_settings()
    try:
        created, present = asyncio.run(provision_topics(config.kafka_bootstrap, config.topics))
    except Exception as exc:
        raise fail(f"provisioning on {config.kafka_bootstrap} failed: {exc}") from exc
    for name in created:
        typer.echo(f"created {name}")
    typer.echo(f"{len(created)} created, {len(present)} already present")
