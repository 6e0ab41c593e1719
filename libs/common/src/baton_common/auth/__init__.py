"""Identity and roles on every Baton API (ADR 0900).

Bearer tokens (static tokens of service accounts, or JWTs verified against a key or a
JWKS) become an :class:`Identity` holding role grants per team; :class:`Gatekeeper` gives
FastAPI routes 401 (no valid token) and 403 (no role) with the reason.
"""

from baton_common.auth.http import (
    AUTH_RESPONSES,
    CHALLENGE,
    Gatekeeper,
    forbid_unless,
    identity_router,
    refusal,
)
from baton_common.auth.identity import (
    ALL_TEAMS,
    Grant,
    Identity,
    Role,
    allows,
    claim_path,
    claim_strings,
    grants_of,
    story_team,
)
from baton_common.auth.jwt_tokens import JwtAuthenticator, JwtSettings
from baton_common.auth.settings import AuthSettings, authenticator_of
from baton_common.auth.tokens import (
    AuthenticationError,
    Authenticator,
    ChainAuthenticator,
    GroupRoles,
    StaticTokenAuthenticator,
    looks_like_jwt,
)

__all__ = [
    "ALL_TEAMS",
    "AUTH_RESPONSES",
    "CHALLENGE",
    "AuthSettings",
    "AuthenticationError",
    "Authenticator",
    "ChainAuthenticator",
    "Gatekeeper",
    "Grant",
    "GroupRoles",
    "Identity",
    "JwtAuthenticator",
    "JwtSettings",
    "Role",
    "StaticTokenAuthenticator",
    "allows",
    "authenticator_of",
    "claim_path",
    "claim_strings",
    "forbid_unless",
    "grants_of",
    "identity_router",
    "looks_like_jwt",
    "refusal",
    "story_team",
]
