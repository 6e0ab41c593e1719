"""Deterministic identifiers, so that replays and retries land on the same ids."""

from __future__ import annotations

import uuid
from typing import Final

__all__ = ["attempt_id", "child_id", "gate_id", "run_id_for"]

_NAMESPACE: Final = uuid.UUID("6f1e4c1e-2b7a-4d2e-9a59-1c3c0b7a7a10")


def run_id_for(story_id: str, key: str) -> str:
    """The run id of a story for a dedup key or intake id (DESIGN.md rule 6)."""
    return str(uuid.uuid5(_NAMESPACE, f"run:{story_id}:{key}"))


def attempt_id(run_id: str, step: str, attempt: int) -> str:
    """The stable id of one step attempt: the idempotency key handed to outside systems."""
    return str(uuid.uuid5(_NAMESPACE, f"attempt:{run_id}:{step}:{attempt}"))


def gate_id(run_id: str, step: str) -> str:
    """The id of a run's approval gate at ``step``."""
    return str(uuid.uuid5(_NAMESPACE, f"gate:{run_id}:{step}"))


def child_id(parent_id: str, index: int) -> str:
    """The id of the ``index``-th record caused by ``parent_id`` (events of a command)."""
    return str(uuid.uuid5(_NAMESPACE, f"child:{parent_id}:{index}"))
