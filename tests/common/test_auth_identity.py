"""Role grants per team, what each role implies, static tokens and the shared settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from baton_common.auth import (
    ALL_TEAMS,
    AuthenticationError,
    AuthSettings,
    Grant,
    Identity,
    Role,
    StaticTokenAuthenticator,
    allows,
    authenticator_of,
    story_team,
)
from baton_common.settings import BatonSettings

ALICE = Identity.model_validate(
    {"user": "alice", "groups": ["secops-oncall", "soc"], "roles": ["operator@secops"]}
)


def test_grants_are_written_role_at_team() -> None:
    assert Grant.model_validate("operator@secops") == Grant(role=Role.OPERATOR, team="secops")
    assert Grant.model_validate("admin") == Grant(role=Role.ADMIN)
    assert Grant.model_validate("viewer@*") == Grant(role=Role.VIEWER)
    assert [str(g) for g in ALICE.roles] == ["operator@secops"]
    assert ALICE.model_dump()["roles"] == ["operator@secops"]
    with pytest.raises(ValidationError, match="unknown role 'superuser'"):
        Grant.model_validate("superuser@secops")


@pytest.mark.parametrize(
    ("grant", "role", "team", "expected"),
    [
        ("operator@secops", Role.OPERATOR, "secops", True),
        ("operator@secops", Role.OPERATOR, "itops", False),
        ("operator@secops", Role.OPERATOR, None, True),  # on some team
        ("operator@secops", Role.VIEWER, "secops", True),  # operator implies viewer
        ("operator@secops", Role.AUTHOR, "secops", False),
        ("operator@secops", Role.OPERATOR, story_team(None), False),  # an unowned story
        ("operator", Role.OPERATOR, story_team(None), True),
        ("operator", Role.OPERATOR, "itops", True),
        ("author@secops", Role.AUTHOR, "secops", True),
        ("author@secops", Role.OPERATOR, "secops", False),
        ("approver@secops", Role.APPROVER, None, True),
        ("approver@secops", Role.VIEWER, None, True),
        ("viewer", Role.OPERATOR, "secops", False),
        ("viewer", Role.APPROVER, None, False),
        ("admin", Role.ADMIN, None, True),
        ("admin", Role.OPERATOR, story_team(None), True),
        ("admin@secops", Role.ADMIN, None, True),
        ("admin@secops", Role.ADMIN, ALL_TEAMS, False),  # platform operations
        ("admin@secops", Role.OPERATOR, "itops", False),
    ],
)
def test_roles_imply_others_and_teams_scope_them(
    grant: str, role: Role, team: str | None, expected: bool
) -> None:
    who = Identity(user="u", roles=[Grant.model_validate(grant)])
    assert allows(who, role, team) is expected


def test_no_roles_allow_nothing() -> None:
    assert not any(allows(Identity(user="u"), role) for role in Role)


async def test_static_tokens_map_to_identities() -> None:
    auth = StaticTokenAuthenticator({"dev-alice": ALICE})

    assert await auth.authenticate("dev-alice") == ALICE
    with pytest.raises(AuthenticationError, match="unknown token"):
        await auth.authenticate("dev-mallory")


async def test_groups_grant_roles_to_their_members() -> None:
    auth = authenticator_of(
        AuthSettings(
            tokens={"t": ALICE},
            group_roles={"soc": [Grant(role=Role.APPROVER)], "other": [Grant(role=Role.ADMIN)]},
        )
    )

    who = await auth.authenticate("t")

    assert [str(g) for g in who.roles] == ["operator@secops", "approver"]


async def test_with_nothing_configured_every_token_is_refused() -> None:
    with pytest.raises(AuthenticationError, match="no tokens or JWT verification configured"):
        await authenticator_of(AuthSettings()).authenticate("anything")


def test_every_service_reads_the_one_auth_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BATON_AUTH__TOKENS",
        '{"dev-alice": {"user": "alice", "groups": ["secops-oncall"], "roles": ["approver"]}}',
    )
    monkeypatch.setenv("BATON_AUTH__GROUP_ROLES", '{"soc": ["viewer@soc"]}')
    monkeypatch.setenv("BATON_AUTH__JWT__JWKS_URL", "http://127.0.0.1:1/jwks")

    settings = BatonSettings()

    assert settings.auth.tokens == {
        "dev-alice": Identity(
            user="alice", groups=["secops-oncall"], roles=[Grant(role=Role.APPROVER)]
        )
    }
    assert settings.auth.group_roles == {"soc": [Grant(role=Role.VIEWER, team="soc")]}
    assert settings.auth.jwt is not None
    assert settings.auth.jwt.jwks_url == "http://127.0.0.1:1/jwks"
