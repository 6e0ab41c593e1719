"""Bearer tokens → identities: static tokens, the JWT chain, and roles from groups.

An :class:`Authenticator` turns a token into an :class:`Identity`:
:class:`StaticTokenAuthenticator` for tokens configured in settings (service accounts and
local use), :class:`~baton_common.auth.jwt_tokens.JwtAuthenticator` for signed JWTs,
:class:`ChainAuthenticator` to accept both, and :class:`GroupRoles` to grant roles to the
members of groups (an identity provider's groups claim mapped to Baton roles).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol

from baton_common.auth.identity import Grant, Identity

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "ChainAuthenticator",
    "GroupRoles",
    "StaticTokenAuthenticator",
    "looks_like_jwt",
]


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
    """Tokens configured in settings (``BATON_AUTH__TOKENS``)."""

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
        if self._jwt is None:
            raise AuthenticationError("this service has no tokens or JWT verification configured")
        raise AuthenticationError("unknown token (only JWTs are accepted)")


class GroupRoles:
    """Adds the roles granted to an identity's groups (``BATON_AUTH__GROUP_ROLES``)."""

    def __init__(self, inner: Authenticator, roles: Mapping[str, Sequence[Grant]]) -> None:
        self._inner = inner
        self._roles = roles

    async def authenticate(self, token: str) -> Identity:
        identity = await self._inner.authenticate(token)
        extra = [grant for group in identity.groups for grant in self._roles.get(group, ())]
        return identity.with_roles(extra) if extra else identity
