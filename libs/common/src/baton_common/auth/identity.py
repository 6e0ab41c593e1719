"""Who a caller is, and the roles they hold, per team.

A role is granted on one team (``operator@secops``) or on every team (``operator``, or
``operator@*``). Roles imply others: ``admin`` implies every role; ``operator``,
``author`` and ``approver`` imply ``viewer``. :func:`allows` is the one rule every API
applies (ADR 0900).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

__all__ = [
    "ALL_TEAMS",
    "Grant",
    "Identity",
    "Role",
    "allows",
    "claim_path",
    "claim_strings",
    "grants_of",
    "story_team",
]


ALL_TEAMS: Final = ""
"""The team to ask for when only an unscoped grant will do (platform operations, and
stories without an owner): no team-scoped grant matches it."""


class Role(StrEnum):
    """What a caller may do; see :data:`IMPLIES` for the roles each one carries."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    AUTHOR = "author"
    APPROVER = "approver"
    ADMIN = "admin"


IMPLIES: Final[dict[Role, frozenset[Role]]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.AUTHOR: frozenset({Role.AUTHOR, Role.VIEWER}),
    Role.APPROVER: frozenset({Role.APPROVER, Role.VIEWER}),
    Role.ADMIN: frozenset(Role),
}


class Grant(BaseModel):
    """A role on one team, or on every team (``team`` None). Written ``role[@team]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    team: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        role, _, team = value.strip().partition("@")
        if role not in Role.__members__.values():
            known = ", ".join(Role)
            raise ValueError(f"unknown role {role!r} in {value!r} (roles: {known})")
        return {"role": role, "team": None if team in ("", "*") else team}

    @model_serializer
    def _to_text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return self.role.value if self.team is None else f"{self.role.value}@{self.team}"

    def covers(self, role: Role, team: str | None) -> bool:
        """Whether this grant gives ``role`` on ``team`` (None: on at least one team)."""
        if role not in IMPLIES[self.role]:
            return False
        return self.team is None or team is None or self.team == team


class Identity(BaseModel):
    """A person or service account: their name, groups and roles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str = Field(min_length=1)
    groups: list[str] = Field(default_factory=list)
    roles: list[Grant] = Field(
        default_factory=list, description="grants such as `operator@secops`, `viewer`, `admin`"
    )

    def with_roles(self, extra: Sequence[Grant]) -> Identity:
        """This identity with ``extra`` grants added (duplicates dropped)."""
        merged = list(dict.fromkeys([*self.roles, *extra]))
        return self if merged == self.roles else self.model_copy(update={"roles": merged})


def allows(identity: Identity, role: Role, team: str | None = None) -> bool:
    """Whether ``identity`` holds ``role`` on ``team``.

    ``team`` None asks for the role on at least one team (reads that are not per team);
    :data:`ALL_TEAMS` asks for an unscoped grant. Pass a story's team through
    :func:`story_team`, so that a story without an owner is covered only by unscoped grants.
    """
    return any(grant.covers(role, team) for grant in identity.roles)


def story_team(owner: str | None) -> str:
    """The team to check a story's actions against: its ``owner``, or :data:`ALL_TEAMS`
    when it has none."""
    return owner or ALL_TEAMS


def grants_of(values: Sequence[str]) -> list[Grant]:
    """The grants among ``values`` (claim entries); entries that name no role are ignored,
    because identity providers put other things in role claims too."""
    found = []
    for value in values:
        try:
            found.append(Grant.model_validate(value))
        except ValueError:
            continue
    return found


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
