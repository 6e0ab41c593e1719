"""Bearer JWTs verified against a configured key or a JWKS (OIDC providers), with the
user, groups and roles read from claims."""

from __future__ import annotations

import asyncio
from typing import Final

import jwt
from jwt import PyJWKClient, PyJWKClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton_common.auth.identity import Identity, claim_path, claim_strings, grants_of
from baton_common.auth.tokens import AuthenticationError

__all__ = ["JwtAuthenticator", "JwtSettings"]

_ASYMMETRIC: Final = ("RS", "PS", "ES", "Ed")


class JwtSettings(BaseModel):
    """How JWTs are verified (``BATON_AUTH__JWT__<FIELD>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | None = Field(
        default=None, description="a PEM public key, or the shared secret of HS* algorithms"
    )
    jwks_url: str | None = Field(default=None, description="where the signing keys are published")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    issuer: str | None = Field(default=None, description="required `iss`, if set")
    audience: str | None = Field(default=None, description="required `aud`, if set")
    user_claim: str = Field("sub", description="the claim (dotted path) naming the person")
    groups_claim: str = Field("groups", description="the claim (dotted path) listing groups")
    roles_claim: str = Field(
        "roles",
        description="the claim (dotted path) listing grants such as `operator@secops`; "
        "entries that name no Baton role are ignored",
    )
    leeway_seconds: float = Field(30.0, ge=0, description="clock skew allowed on exp/nbf/iat")
    jwks_cache_seconds: int = Field(300, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> JwtSettings:
        if (self.key is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of `key` or `jwks_url`")
        if self.jwks_url is not None and not all(
            a.startswith(_ASYMMETRIC) for a in self.algorithms
        ):
            raise ValueError("a JWKS only serves public keys: use RS*/PS*/ES*/EdDSA algorithms")
        return self


class JwtAuthenticator:
    """Verifies signature, expiry, and (if configured) issuer and audience."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._jwks = (
            PyJWKClient(
                settings.jwks_url, cache_keys=True, lifespan=settings.jwks_cache_seconds, timeout=5
            )
            if settings.jwks_url is not None
            else None
        )

    async def _key(self, token: str) -> object:
        if self._jwks is None:
            return self._settings.key
        try:
            # PyJWKClient fetches with urllib: keep it off the event loop.
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except PyJWKClientError as exc:
            raise AuthenticationError(f"no signing key for the token: {exc}") from exc
        except jwt.DecodeError as exc:
            raise AuthenticationError(f"malformed JWT: {exc}") from exc
        return signing.key

    async def authenticate(self, token: str) -> Identity:
        s = self._settings
        key = await self._key(token)
        required = ["exp", *(["iss"] if s.issuer else []), *(["aud"] if s.audience else [])]
        try:
            claims = jwt.decode(
                token,
                key=key,  # type: ignore[arg-type]
                algorithms=s.algorithms,
                issuer=s.issuer,
                audience=s.audience,
                leeway=s.leeway_seconds,
                options={"require": required, "verify_aud": s.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("JWT expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"JWT rejected: {exc}") from exc
        user = claim_path(claims, s.user_claim)
        if not isinstance(user, str) or not user:
            raise AuthenticationError(f"JWT has no `{s.user_claim}` claim naming the user")
        groups = claim_strings(claim_path(claims, s.groups_claim))
        roles = grants_of(claim_strings(claim_path(claims, s.roles_claim)))
        return Identity(user=user, groups=list(groups), roles=roles)
