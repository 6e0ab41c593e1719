"""Actions: what a step does. One module per action kind; the registry is built in ``main``."""

from __future__ import annotations

from typing import Protocol

from pydantic import JsonValue

from baton_common.records import StepTask

__all__ = ["Action"]


class Action(Protocol):
    """Performs one step attempt and returns its output.

    Raises:
        RetryableError: if a later attempt might succeed.
        PermanentError: if no attempt can succeed.
    """

    async def __call__(self, task: StepTask) -> JsonValue: ...
