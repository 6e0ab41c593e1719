"""Generate the contracts' JSON Schemas into ``schemas/``; ``--check`` fails on drift.

Usage: ``python -m baton_common.schemas [--check] [DIR]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from baton_common.commands import COMMAND_ADAPTER
from baton_common.envelope import Envelope
from baton_common.events import EVENT_ADAPTER
from baton_common.policy import Policy, PolicyPublished
from baton_common.records import (
    TASK_ADAPTER,
    DeadLetter,
    EventReceived,
    StoryApproved,
    StoryPublished,
)
from baton_common.story import Story

__all__ = ["generate", "main"]

_SCHEMAS: dict[str, TypeAdapter[object]] = {
    "envelope": TypeAdapter(Envelope),
    "command": COMMAND_ADAPTER,  # type: ignore[dict-item]
    "run-event": EVENT_ADAPTER,  # type: ignore[dict-item]
    "task": TASK_ADAPTER,  # type: ignore[dict-item]
    "story": TypeAdapter(Story),
    "story-published": TypeAdapter(StoryPublished),
    "story-approved": TypeAdapter(StoryApproved),
    "policy": TypeAdapter(Policy),
    "policy-published": TypeAdapter(PolicyPublished),
    "event-received": TypeAdapter(EventReceived),
    "dead-letter": TypeAdapter(DeadLetter),
}


def generate() -> dict[str, str]:
    """File name → JSON text of every contract schema."""
    return {
        f"{name}.schema.json": json.dumps(adapter.json_schema(), indent=2, sort_keys=True) + "\n"
        for name, adapter in _SCHEMAS.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    target = Path(rest[0]) if rest else Path("schemas")
    wanted = generate()
    if check:
        stale = sorted(
            name
            for name, text in wanted.items()
            if not (target / name).exists() or (target / name).read_text() != text
        )
        extra = sorted(p.name for p in target.glob("*.schema.json") if p.name not in wanted)
        if stale or extra:
            print(f"schema drift: regenerate with `make schemas` ({', '.join(stale + extra)})")
            return 1
        print(f"schemas up to date ({len(wanted)} files)")
        return 0
    target.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (target / name).write_text(text)
    print(f"wrote {len(wanted)} schemas to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
