"""The world's mutable state, one object shared by the routers (one event loop, no locks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton_world.calls import CallLog
from baton_world.directory import identity_accounts
from baton_world.settings import WorldSettings

__all__ = ["Idempotent", "World"]

Json = Any


@dataclass
class Idempotent:
    """Answers given per ``Idempotency-Key``: a repeat gets the same answer, no new effect."""

    answers: dict[str, tuple[int, Json]] = field(default_factory=dict)

    def replay(self, key: str | None) -> tuple[int, Json] | None:
        return self.answers.get(key) if key else None

    def remember(self, key: str | None, status: int, body: Json) -> None:
        if key:
            self.answers[key] = (status, body)


@dataclass
class World:
    settings: WorldSettings
    calls: CallLog
    accounts: dict[str, dict[str, Json]] = field(default_factory=identity_accounts)
    idp_keys: Idempotent = field(default_factory=Idempotent)
    case_keys: Idempotent = field(default_factory=Idempotent)
    shop_keys: Idempotent = field(default_factory=Idempotent)
    messages: dict[str, dict[str, Json]] = field(default_factory=dict)  # email metadata
    quarantined: dict[str, str] = field(default_factory=dict)  # message id → key
    blocked_senders: list[str] = field(default_factory=list)
    cases: dict[str, dict[str, Json]] = field(default_factory=dict)
    conversations: dict[str, dict[str, Json]] = field(default_factory=dict)
    orders: dict[str, dict[str, Json]] = field(default_factory=dict)
    llm_scripts: list[tuple[str, dict[str, Json]]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: WorldSettings) -> World:
        return cls(settings=settings, calls=CallLog(settings.max_calls))
