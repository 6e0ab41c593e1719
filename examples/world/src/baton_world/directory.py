"""Who and what exists in the world: people, accounts, domains, devices, past incidents.

Everything is deterministic, so a story run against the world gives the same answers
every time; the EDR's scenarios (``edr.py``) pick from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DOMAINS",
    "PEOPLE",
    "SIEM_HISTORY",
    "SKUS",
    "Domain",
    "Person",
    "account_of",
    "identity_accounts",
    "person",
]

Json = Any


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    department: str
    title: str
    manager: str | None
    location: str
    hr_status: str = "active"  # HR's truth: active | terminated | leave
    risk_score: int = 10
    phished_before: bool = False
    privileged: bool = False
    idp_department: str | None = None  # where the IdP disagrees with HR (drift)
    idp_title: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)


PEOPLE: dict[str, Person] = {
    p.email: p
    for p in [
        Person(
            "alice@corp.example",
            "Alice Ng",
            "Security",
            "Security Engineer",
            None,
            "Paris",
            privileged=True,
            groups=("secops-oncall",),
        ),
        Person(
            "bob@corp.example", "Bob Diaz", "Finance", "Accountant", "carol@corp.example", "London"
        ),
        Person(
            "carol@corp.example",
            "Carol Yu",
            "Finance",
            "Finance Director",
            None,
            "London",
            risk_score=35,
        ),
        Person(
            "dana@corp.example",
            "Dana Kim",
            "Sales",
            "Account Executive",
            "carol@corp.example",
            "New York",
            risk_score=82,
            phished_before=True,
        ),
        Person(
            "erin@corp.example",
            "Erin Shaw",
            "IT",
            "Systems Administrator",
            None,
            "Paris",
            privileged=True,
            idp_title="IT Support",
            groups=("it-admins", "domain-admins"),
        ),
        Person(
            "frank@corp.example",
            "Frank Ode",
            "Sales",
            "Sales Engineer",
            "dana@corp.example",
            "Berlin",
            hr_status="terminated",
        ),
        Person(
            "grace@corp.example",
            "Grace Ito",
            "Marketing",
            "Content Lead",
            None,
            "Tokyo",
            idp_department="Sales",
        ),
        Person(
            "heidi@corp.example",
            "Heidi Park",
            "Engineering",
            "Developer",
            None,
            "Berlin",
            risk_score=20,
        ),
    ]
}


def person(email: str) -> Person | None:
    """A known person, or (for any other ``@corp.example`` address) a plain employee.

    The generated employees let alert streams use a fresh user per alert, as a real
    company has thousands.
    """
    known = PEOPLE.get(email)
    if known is not None or not email.endswith("@corp.example"):
        return known
    local = email.split("@", 1)[0]
    return Person(email, f"{local.title()} Staff", "Operations", "Analyst", None, "Remote")


def account_of(someone: Person, number: int) -> dict[str, Json]:
    """An Okta-like user object for ``someone``."""
    first, last = someone.name.split(" ", 1)
    return {
        "id": f"00u{number:06d}world",
        "status": "ACTIVE",
        "profile": {
            "login": someone.email,
            "email": someone.email,
            "firstName": first,
            "lastName": last,
            "department": someone.idp_department or someone.department,
            "title": someone.idp_title or someone.title,
            "manager": someone.manager,
        },
        "groups": list(someone.groups),
        "privileged": someone.privileged,
        "sessions": 2,
    }


def identity_accounts() -> dict[str, dict[str, Json]]:
    """The identity provider's accounts at the start (Okta-like user objects)."""
    return {p.email: account_of(p, n) for n, p in enumerate(PEOPLE.values(), start=1)}


@dataclass(frozen=True)
class Domain:
    verdict: str  # malicious | suspicious | clean | unknown
    score: int  # 0 (clean) … 100 (malicious)
    first_seen_days: int
    categories: tuple[str, ...] = ()


DOMAINS: dict[str, Domain] = {
    "micros0ft-login.example": Domain("malicious", 96, 2, ("phishing", "credential-harvest")),
    "payroll-update.example": Domain("malicious", 91, 5, ("phishing",)),
    "docs-share.example": Domain("suspicious", 62, 11, ("file-sharing", "newly-registered")),
    "corp.example": Domain("clean", 1, 4000, ("corporate",)),
    "partner.example": Domain("clean", 8, 2200, ("business",)),
}
UNKNOWN_DOMAIN = Domain("unknown", 40, 30)


def domain_of(value: str) -> str:
    """The host's registrable part of a URL or an email address (good enough locally)."""
    host = value.split("@", 1)[-1] if "@" in value and "://" not in value else value
    host = host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    parts = host.split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else host


def reputation(value: str) -> tuple[str, Domain]:
    domain = domain_of(value)
    return domain, DOMAINS.get(domain, UNKNOWN_DOMAIN)


SIEM_HISTORY: dict[str, list[dict[str, Json]]] = {
    "dana@corp.example": [
        {
            "@timestamp": "2026-06-14T09:12:00Z",
            "event": {"category": "email", "action": "phishing-reported"},
            "user": {"email": "dana@corp.example"},
            "rule": {"name": "Credential phishing"},
            "outcome": "clicked",
        },
        {
            "@timestamp": "2026-09-02T16:40:00Z",
            "event": {"category": "authentication", "action": "impossible-travel"},
            "user": {"email": "dana@corp.example"},
            "rule": {"name": "Impossible travel"},
            "outcome": "password-reset",
        },
    ],
    "carol@corp.example": [
        {
            "@timestamp": "2026-03-20T11:00:00Z",
            "event": {"category": "email", "action": "phishing-reported"},
            "user": {"email": "carol@corp.example"},
            "rule": {"name": "CEO fraud"},
            "outcome": "reported",
        },
    ],
}

SKUS: dict[str, dict[str, Json]] = {
    "LAPTOP-STD-14": {"name": 'Standard laptop 14"', "price": 1450, "currency": "EUR"},
    "LAPTOP-PRO-16": {"name": 'Pro laptop 16"', "price": 2890, "currency": "EUR"},
    "CHARGER-65W": {"name": "USB-C charger 65W", "price": 49, "currency": "EUR"},
    "KEYBOARD-STD": {"name": "Keyboard", "price": 59, "currency": "EUR"},
    "SCREEN-REPAIR-14": {"name": 'Screen repair (14")', "price": 320, "currency": "EUR"},
    "BATTERY-14": {"name": 'Battery replacement (14")', "price": 140, "currency": "EUR"},
}
