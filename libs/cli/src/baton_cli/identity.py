"""`baton whoami`: who ``BATON_TOKEN`` stands for, as the services see it (ADR 0900)."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from baton_cli.common import AsJson, call, fail, load_settings, print_json
from baton_cli.settings import CliSettings
from baton_common.auth import Identity

__all__ = ["identity_of", "whoami"]


def identity_of(config: CliSettings, url: str | None = None) -> Identity:
    """The identity of the configured token, from a service's ``GET /whoami``.

    Raises:
        typer.Exit: without a token, or when the service refuses it (with the reason).
    """
    if not config.token:
        raise fail("set BATON_TOKEN to your token (with `make up`: export BATON_TOKEN=dev-admin)")
    body = call("GET", f"{url or config.audit_url}/whoami")
    try:
        return Identity.model_validate(body)
    except ValidationError as exc:
        raise fail(f"the service answered /whoami with something else: {exc}") from exc


def whoami(
    url: Annotated[
        str | None, typer.Option(help="ask this service (default: BATON_AUDIT_URL)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Show who your BATON_TOKEN stands for: user, groups and role grants."""
    identity = identity_of(load_settings(), url)
    if as_json:
        print_json(identity.model_dump(mode="json"))
        return
    typer.echo(f"user:   {identity.user}")
    typer.echo(f"groups: {', '.join(identity.groups) or '-'}")
    typer.echo(f"roles:  {', '.join(str(g) for g in identity.roles) or '-'}")
