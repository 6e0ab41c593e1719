"""Who may decide a gate: named approvers and approver groups."""

from __future__ import annotations

import pytest

from baton_approvals.identity import may_decide, principals
from baton_common.auth import Identity

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
