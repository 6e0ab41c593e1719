"""Who may decide a gate, and how tokens become identities."""

from __future__ import annotations

import pytest

from baton_approvals.identity import (
    AuthenticationError,
    Identity,
    StaticTokenAuthenticator,
    may_decide,
    principals,
)
from baton_approvals.settings import ApprovalsSettings

ALICE = Identity(user="alice", groups=["secops-oncall", "soc"])


def test_principals_are_the_user_and_each_group() -> None:
    assert principals(ALICE) == ["alice", "group:secops-oncall", "group:soc"]


@pytest.mark.parametrize(
    ("approvers", "expected"),
    [
        (["alice"], True),
        (["group:soc"], True),
        (["bob", "group:secops-oncall"], True),
        (["bob", "group:helpdesk"], False),
        (["secops-oncall"], False),  # a bare group name is a user name, not the group
        (["group:alice"], False),  # the user name does not stand for a group
        ([], False),
    ],
)
def test_may_decide_by_name_or_group(approvers: list[str], expected: bool) -> None:
    assert may_decide(ALICE, approvers) is expected


async def test_static_tokens_map_to_identities() -> None:
    auth = StaticTokenAuthenticator({"dev-alice": ALICE})

    assert await auth.authenticate("dev-alice") == ALICE
    with pytest.raises(AuthenticationError, match="unknown token"):
        await auth.authenticate("dev-mallory")


def test_tokens_come_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "BATON_APPROVALS_TOKENS", '{"dev-alice": {"user": "alice", "groups": ["secops-oncall"]}}'
    )
    monkeypatch.setenv("BATON_DATABASE_URL", "postgresql://u:p@db:5432/baton")
    monkeypatch.setenv("BATON_APPROVALS_SCHEMA", "inbox")
    monkeypatch.setenv("BATON_APPROVALS_GROUP_ID", "ns-approvals")

    settings = ApprovalsSettings()

    assert settings.tokens == {"dev-alice": Identity(user="alice", groups=["secops-oncall"])}
    assert settings.database_url == "postgresql://u:p@db:5432/baton"
    assert (settings.db_schema, settings.group_id) == ("inbox", "ns-approvals")
    assert settings.http_port == 8084
