"""The authentication block every service shares (``BATON_AUTH__<FIELD>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from baton_common.auth.identity import Grant, Identity
from baton_common.auth.jwt_tokens import JwtAuthenticator, JwtSettings
from baton_common.auth.tokens import (
    Authenticator,
    ChainAuthenticator,
    GroupRoles,
    StaticTokenAuthenticator,
)

__all__ = ["AuthSettings", "authenticator_of"]


class AuthSettings(BaseModel):
    """Who may call the services' APIs: static tokens, JWTs, and roles given to groups."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: dict[str, Identity] = Field(
        default_factory=dict,
        description="static bearer tokens of service accounts and local users, e.g. "
        '{"dev-alice": {"user": "alice", "groups": ["secops-oncall"], '
        '"roles": ["approver@secops"]}}',
    )
    jwt: JwtSettings | None = Field(
        default=None, description="accept bearer JWTs verified with this key or JWKS"
    )
    group_roles: dict[str, list[Grant]] = Field(
        default_factory=dict,
        description='roles of every member of a group, e.g. {"secops-oncall": ["operator@secops"]}',
    )


def authenticator_of(settings: AuthSettings) -> Authenticator:
    """Static tokens and (when configured) JWTs, plus the roles of the caller's groups.

    With neither configured every token is refused with that reason: a service is never
    open by accident.
    """
    static = StaticTokenAuthenticator(settings.tokens) if settings.tokens else None
    jwt = JwtAuthenticator(settings.jwt) if settings.jwt is not None else None
    chain = ChainAuthenticator(static=static, jwt=jwt)
    return GroupRoles(chain, settings.group_roles) if settings.group_roles else chain
