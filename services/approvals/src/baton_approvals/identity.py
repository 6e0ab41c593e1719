"""Who is calling, and whether they may decide a gate.

Callers present ``Authorization: Bearer <token>``. An :class:`Authenticator` turns the
token into an :class:`Identity`: :class:`StaticTokenAuthenticator` for tokens configured
in settings (local use), :class:`JwtAuthenticator` (``jwt_auth.py``) for signed JWTs, and
:class:`ChainAuthenticator` to accept both.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "ChainAuthenticator",
    "Identity",
    "StaticTokenAuthenticator",
    "looks_like_jwt",
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


def looks_like_jwt(token: str) -> bool:
    """Whether ``token`` has a JWT's shape (three dot-separated base64url parts)."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


class ChainAuthenticator:
    """JWT-shaped tokens go to ``jwt``, any other token to ``static``.

    A token is judged by one authenticator only, so a JWT's error (expired, bad
    signature) is the reason the caller reads, not "unknown token".
    """

    def __init__(self, *, static: Authenticator | None, jwt: Authenticator | None) -> None:
        self._static = static
        self._jwt = jwt

    async def authenticate(self, token: str) -> Identity:
        if self._jwt is not None and looks_like_jwt(token):
            return await self._jwt.authenticate(token)
        if self._static is not None:
            return await self._static.authenticate(token)
        raise AuthenticationError("unknown token (only JWTs are accepted)")


def principals(identity: Identity) -> list[str]:
    """The approver entries that name ``identity``: the user and ``group:<g>`` per group."""
    return [identity.user, *(f"group:{group}" for group in identity.groups)]


def may_decide(identity: Identity, approvers: Iterable[str]) -> bool:
    """Whether ``identity`` is one of a gate's approvers, by name or through a group."""
    return not set(principals(identity)).isdisjoint(approvers)


def claim_path(claims: Mapping[str, object], path: str) -> object:
    """The value at a dotted claim path (``realm_access.roles``), or None."""
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def claim_strings(value: object) -> Sequence[str]:
    """A claim's strings: a list of strings, or a space/comma separated string."""
    if isinstance(value, str):
        return [g for g in value.replace(",", " ").split() if g]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str) and g]
    return []
