"""The action kinds a story step may name; the executor has one module per kind."""

from __future__ import annotations

from typing import Literal

__all__ = ["ActionKind"]

ActionKind = Literal[
    "http",
    "transform",
    "ai.classify",
    "ai.extract",
    "ai.agent",
    "notify.slack",
    "notify.email",
    "mcp.call",
]
