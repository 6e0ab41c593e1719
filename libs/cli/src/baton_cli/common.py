"""What every command group shares: settings, API calls with readable errors, output."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from baton_cli.http import ApiError, request
from baton_cli.settings import CliSettings

__all__ = ["AsJson", "call", "fail", "load_settings", "print_json"]

AsJson = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]


def load_settings() -> CliSettings:
    return CliSettings()


def fail(message: str) -> typer.Exit:
    """Print an error and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def call(method: str, url: str, **kwargs: Any) -> Any:
    """Call a service's API with ``BATON_TOKEN`` (unless ``token=`` is given); exit with
    the reason on failure."""
    kwargs.setdefault("token", load_settings().token)
    try:
        return request(method, url, **kwargs)
    except ApiError as exc:
        raise fail(str(exc)) from exc


def print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))
