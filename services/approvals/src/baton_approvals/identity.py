"""Who is calling, and whether they may decide a gate.

Callers present ``Authorization: Bearer <token>``. An :class:`Authenticator` turns the
token into an :class:`Identity`; today tokens are static (from settings), and a JWT
authenticator can implement the same protocol later without touching the API.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "Identity",
    "StaticTokenAuthenticator",
    "may_decide",
    "principals",
]


class Identity(BaseModel):
    """A person: their user name and the groups they belong to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)


class AuthenticationError(Exception):
    """A token is missing, malformed or unknown; the message says which."""


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Identity:
        """The identity a bearer token stands for.

        Raises:
            AuthenticationError: with the reason the token is not accepted.
        """
        ...


class StaticTokenAuthenticator:
    """Tokens configured in settings (``BATON_APPROVALS_TOKENS``), for development and tests."""

    def __init__(self, tokens: Mapping[str, Identity]) -> None:
        self._tokens = [(token.encode(), identity) for token, identity in tokens.items()]

    async def authenticate(self, token: str) -> Identity:
        presented = token.encode()
        found: Identity | None = None
        # Compare against every token in constant time, so timing says nothing about them.
        for known, identity in self._tokens:
            if hmac.compare_digest(known, presented):
                found = identity
        if found is None:
            raise AuthenticationError("unknown token")
        return found


def principals(identity: Identity) -> list[str]:
    """The approver entries that name ``identity``: the user and ``group:<g>`` per group."""
    return [identity.user, *(f"group:{group}" for group in identity.groups)]


def may_decide(identity: Identity, approvers: Iterable[str]) -> bool:
    """Whether ``identity`` is one of a gate's approvers, by name or through a group."""
    return not set(principals(identity)).isdisjoint(approvers)
