"""Bearer JWTs: verified against a JWKS served on 127.0.0.1 or a configured key; the user,
groups and role grants come from claims."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from jwks import JwksServer, ec_key, rsa_key, token
from pydantic import ValidationError

from baton_common.auth import (
    AuthenticationError,
    ChainAuthenticator,
    Grant,
    Identity,
    JwtAuthenticator,
    JwtSettings,
    Role,
    StaticTokenAuthenticator,
    looks_like_jwt,
)

KEY = rsa_key()
OTHER = rsa_key()
ISSUER = "https://idp.example.test"


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer({"k1": KEY}) as server:
        yield server


def by_jwks(server: JwksServer, **extra: object) -> JwtAuthenticator:
    return JwtAuthenticator(
        JwtSettings.model_validate({"jwks_url": server.url, "algorithms": ["RS256"], **extra})
    )


async def test_a_jwks_signed_token_gives_user_and_groups(jwks: JwksServer) -> None:
    auth = by_jwks(jwks)

    who = await auth.authenticate(token(KEY, sub="alice", groups=["secops-oncall", "soc"]))

    assert who == Identity(user="alice", groups=["secops-oncall", "soc"])
    # Keys are cached: a second token needs no second fetch.
    await auth.authenticate(token(KEY, sub="bob"))
    assert jwks.fetches == 1


async def test_claim_names_are_settings(jwks: JwksServer) -> None:
    auth = by_jwks(jwks, user_claim="preferred_username", groups_claim="realm_access.roles")

    who = await auth.authenticate(
        token(
            KEY,
            sub="3f2a",
            preferred_username="alice",
            realm_access={"roles": ["secops-oncall"]},
        )
    )

    assert who == Identity(user="alice", groups=["secops-oncall"])


async def test_roles_come_from_a_claim_and_unknown_entries_are_ignored(jwks: JwksServer) -> None:
    auth = by_jwks(jwks, roles_claim="resource_access.baton.roles")

    who = await auth.authenticate(
        token(
            KEY,
            sub="alice",
            resource_access={"baton": {"roles": ["operator@secops", "offline_access", "viewer"]}},
        )
    )

    assert who.roles == [
        Grant(role=Role.OPERATOR, team="secops"),
        Grant(role=Role.VIEWER, team=None),
    ]


async def test_groups_may_be_a_space_separated_string(jwks: JwksServer) -> None:
    who = await by_jwks(jwks, groups_claim="scope").authenticate(
        token(KEY, sub="alice", scope="soc helpdesk")
    )
    assert who.groups == ["soc", "helpdesk"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(KEY, sub="alice", lifetime=-120, iss=ISSUER, aud="baton"), "JWT expired"),
        (
            lambda: token(OTHER, sub="alice", iss=ISSUER, aud="baton"),
            "JWT rejected: Signature verification failed",
        ),
        (
            lambda: token(OTHER, kid="k9", sub="alice", iss=ISSUER, aud="baton"),
            "no signing key for the token",
        ),
        (lambda: token(KEY, sub="alice", iss="https://evil.test", aud="baton"), "Invalid issuer"),
        (lambda: token(KEY, sub="alice", iss=ISSUER, aud="other"), "Audience doesn't match"),
        (lambda: token(KEY, sub="alice", iss=ISSUER), 'missing the "aud" claim'),
        (lambda: token(KEY, iss=ISSUER, aud="baton"), "JWT has no `sub` claim"),
        (
            lambda: token("secret-" * 6, algorithm="HS256", sub="alice", iss=ISSUER, aud="baton"),
            "JWT rejected",
        ),
    ],
    ids=[
        "expired",
        "forged",
        "unknown-kid",
        "issuer",
        "audience",
        "no-audience",
        "no-user",
        "hs256-confusion",
    ],
)
async def test_bad_tokens_are_refused_with_the_reason(
    jwks: JwksServer, make: Callable[[], str], reason: str
) -> None:
    auth = by_jwks(jwks, issuer=ISSUER, audience="baton")
    assert (
        await auth.authenticate(token(KEY, sub="alice", iss=ISSUER, aud="baton"))
    ).user == "alice"

    with pytest.raises(AuthenticationError, match=reason):
        await auth.authenticate(make())


async def test_an_unsigned_token_is_refused() -> None:
    import jwt as pyjwt

    unsigned = pyjwt.encode({"sub": "alice", "exp": 4102444800}, key="", algorithm="none")
    auth = JwtAuthenticator(JwtSettings(key="x" * 32, algorithms=["HS256"]))

    with pytest.raises(AuthenticationError, match="JWT rejected"):
        await auth.authenticate(unsigned)


async def test_a_configured_public_key_verifies_es256() -> None:
    key = ec_key()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = JwtAuthenticator(JwtSettings(key=pem, algorithms=["ES256"]))

    assert await auth.authenticate(token(key, algorithm="ES256", sub="carol")) == Identity(
        user="carol"
    )
    with pytest.raises(AuthenticationError, match="Signature verification failed"):
        await auth.authenticate(token(ec_key(), algorithm="ES256", sub="carol"))


async def test_a_shared_secret_verifies_hs256() -> None:
    secret = "a-shared-secret-of-32-bytes-long!"
    auth = JwtAuthenticator(JwtSettings(key=secret, algorithms=["HS256"]))

    who = await auth.authenticate(token(secret, algorithm="HS256", sub="dave", groups="ops"))

    assert who == Identity(user="dave", groups=["ops"])


def test_settings_need_exactly_one_key_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of `key` or `jwks_url`"):
        JwtSettings()
    with pytest.raises(ValidationError, match="exactly one of `key` or `jwks_url`"):
        JwtSettings(key="k", jwks_url="http://127.0.0.1/jwks")
    with pytest.raises(ValidationError, match="a JWKS only serves public keys"):
        JwtSettings(jwks_url="http://127.0.0.1/jwks", algorithms=["HS256"])


def test_jwt_shape() -> None:
    assert looks_like_jwt(token(KEY, sub="a"))
    assert not looks_like_jwt("dev-alice")
    assert not looks_like_jwt("a.b")


async def test_the_chain_sends_jwts_to_jwt_and_others_to_static(jwks: JwksServer) -> None:
    chain = ChainAuthenticator(
        static=StaticTokenAuthenticator({"dev-bob": Identity(user="bob")}), jwt=by_jwks(jwks)
    )

    assert (await chain.authenticate("dev-bob")).user == "bob"
    assert (await chain.authenticate(token(KEY, sub="alice"))).user == "alice"
    with pytest.raises(AuthenticationError, match="unknown token"):
        await chain.authenticate("dev-mallory")
    with pytest.raises(AuthenticationError, match="JWT expired"):
        await chain.authenticate(token(KEY, sub="alice", lifetime=-120))
    only_jwt = ChainAuthenticator(static=None, jwt=by_jwks(jwks))
    with pytest.raises(AuthenticationError, match="only JWTs are accepted"):
        await only_jwt.authenticate("dev-bob")
