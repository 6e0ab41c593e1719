"""Whether a person may decide a gate: they are named among its approvers, or one of
their groups is. Who the person is comes from :mod:`baton_common.auth`."""

from __future__ import annotations

from collections.abc import Iterable

from baton_common.auth import Identity

__all__ = ["may_decide", "principals"]


def principals(identity: Identity) -> list[str]:
    """The approver entries that name ``identity``: the user and ``group:<g>`` per group."""
    return [identity.user, *(f"group:{group}" for group in identity.groups)]


def may_decide(identity: Identity, approvers: Iterable[str]) -> bool:
    """Whether ``identity`` is one of a gate's approvers, by name or through a group."""
    return not set(principals(identity)).isdisjoint(approvers)
