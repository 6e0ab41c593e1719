"""The role tables' callers and checks: one token per role (ADR 0900).

A route's table case is (route, caller): no token → 401 with ``WWW-Authenticate: Bearer``,
an unknown token → 401, a caller without the route's role (or on another team) → 403 with
the reason, a caller with it → the route's success status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import pytest

from baton_common.auth import AuthSettings, Identity

TEAM = "secops"
GROUP = "secops-oncall"  # the approver group of the tables' gates


def _who(user: str, *roles: str, groups: Iterable[str] = (GROUP,)) -> Identity:
    return Identity.model_validate({"user": user, "groups": list(groups), "roles": list(roles)})


CALLERS: dict[str, Identity] = {
    "viewer": _who("vera", "viewer", groups=()),
    "operator": _who("otto", f"operator@{TEAM}", groups=()),
    "operator-itops": _who("ivan", "operator@itops", groups=()),
    "author": _who("ada", f"author@{TEAM}", groups=()),
    "approver": _who("april", f"approver@{TEAM}"),
    "admin": _who("root", "admin"),
    "team-admin": _who("tess", f"admin@{TEAM}"),
    "no-roles": _who("nora"),  # in the approver group, but holding no role
}
EVERYONE = frozenset(CALLERS) - {"no-roles"}
NO_TOKEN = "no-token"
UNKNOWN_TOKEN = "unknown-token"
AUTH = AuthSettings(tokens={f"tok-{name}": who for name, who in CALLERS.items()})
"""The auth settings of an app under a role table."""

ADMIN = {"Authorization": "Bearer tok-admin"}
"""Headers of the unscoped admin, for tests about something other than roles."""


def bearer(caller: str) -> dict[str, str]:
    """The headers ``caller`` sends (none for :data:`NO_TOKEN`)."""
    if caller == NO_TOKEN:
        return {}
    if caller == UNKNOWN_TOKEN:
        return {"Authorization": "Bearer tok-mallory"}
    return {"Authorization": f"Bearer tok-{caller}"}


@dataclass(frozen=True)
class Route:
    """A route under test and who may call it."""

    method: str
    path: str
    allowed: frozenset[str]
    ok: int = 200
    body: dict[str, object] | None = field(default=None, hash=False)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def table(routes: Iterable[Route]) -> list[object]:
    """pytest params of every (route, caller), named ``METHOD path as caller``."""
    return [
        pytest.param(route, caller, id=f"{route} as {caller}")
        for route in routes
        for caller in [NO_TOKEN, UNKNOWN_TOKEN, *CALLERS]
    ]


async def check(client: httpx.AsyncClient, route: Route, caller: str) -> httpx.Response:
    """Call ``route`` as ``caller`` and assert the status the table expects."""
    response = await client.request(
        route.method, route.path, json=route.body, headers=bearer(caller)
    )
    detail = response.json().get("detail", "") if response.status_code in (401, 403) else ""
    if caller in (NO_TOKEN, UNKNOWN_TOKEN):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        reason = "missing bearer token" if caller == NO_TOKEN else "invalid bearer token"
        assert detail.startswith(reason), detail
    elif caller in route.allowed:
        assert response.status_code == route.ok, response.text
    else:
        assert response.status_code == 403, response.text
        assert detail.startswith(f"{CALLERS[caller].user} lacks the "), detail
    return response
