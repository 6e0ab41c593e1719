"""FastAPI dependencies: 401 without a valid bearer token, 403 without the role.

No ``from __future__ import annotations`` here: FastAPI resolves the dependency
signatures at runtime.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from baton_common.auth.identity import ALL_TEAMS, Identity, Role, allows
from baton_common.auth.tokens import AuthenticationError, Authenticator

__all__ = ["AUTH_RESPONSES", "CHALLENGE", "Gatekeeper", "forbid_unless", "refusal"]

_BEARER: Final = HTTPBearer(
    auto_error=False, description="a token of a person or a service account"
)
CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
AUTH_RESPONSES: Final[dict[int | str, dict[str, object]]] = {
    401: {"description": "missing or invalid bearer token"},
    403: {"description": "the caller lacks the role this route needs"},
}

Dependency = Callable[..., Awaitable[Identity]]


def refusal(identity: Identity, role: Role, team: str | None) -> str:
    """Why ``identity`` may not act as ``role`` on ``team``, for a 403's detail."""
    if team is None:
        where = "on any team"
    elif team == ALL_TEAMS:
        where = "on all teams (a grant without @team)"
    else:
        where = f"on team {team}"
    held = ", ".join(str(g) for g in identity.roles) or "no roles"
    return f"{identity.user} lacks the {role.value} role {where} (holds: {held})"


def forbid_unless(
    identity: Identity, role: Role, team: str | None = None, *, context: str | None = None
) -> None:
    """Raise 403 with the reason unless ``identity`` holds ``role`` on ``team``; ``context``
    is added to the reason (why that team was asked for)."""
    if not allows(identity, role, team):
        reason = refusal(identity, role, team)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{reason}: {context}" if context else reason
        )


class Gatekeeper:
    """Turns ``Authorization: Bearer`` into an :class:`Identity` and checks roles."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def identify(self, credentials: HTTPAuthorizationCredentials | None) -> Identity:
        """The caller's identity.

        Raises:
            HTTPException: 401 with the reason and ``WWW-Authenticate: Bearer``.
        """
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token: send Authorization: Bearer <token>",
                headers=CHALLENGE,
            )
        try:
            return await self.authenticator.authenticate(credentials.credentials)
        except AuthenticationError as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: {exc}", headers=CHALLENGE
            ) from exc

    def caller(self) -> Dependency:
        """A dependency giving any authenticated caller (the route checks roles itself)."""

        async def caller(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        ) -> Identity:
            return await self.identify(credentials)

        return caller

    def require(self, role: Role, *, team: str | None = None) -> Dependency:
        """A dependency giving the caller if they hold ``role`` on ``team``, else 401/403.

        ``team`` None asks for the role on any team; routes whose team depends on the
        resource (a run's story owner) take :meth:`caller` and call :func:`forbid_unless`.
        """

        async def required(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        ) -> Identity:
            identity = await self.identify(credentials)
            forbid_unless(identity, role, team)
            return identity

        return required


def identity_router(gatekeeper: Gatekeeper) -> APIRouter:
    """``GET /whoami``: the caller's identity as this service sees it (any valid token).

    Every service serves it, so a token can be checked against each one, and the CLI
    learns who it acts as from the token rather than from the login name.
    """
    Caller = Annotated[Identity, Depends(gatekeeper.caller())]
    router = APIRouter(tags=["identity"], responses=AUTH_RESPONSES)

    @router.get("/whoami")
    async def whoami(identity: Caller) -> Identity:
        """The user, groups and role grants the bearer token stands for."""
        return identity

    return router
