"""Reading a ``baton.tasks.<queue>`` record: its envelope and its ``StepTask``.

A task the scheduler wrote parses strictly (orjson: JSON types only) and has the usual
shape: the model is then built from the parsed values with :func:`baton_common.trusted`,
which gives what ``StepTask.model_validate`` gives (``tests/executor/test_task_records.py``
compares both on generated records, near misses included) without walking the input
with a discriminator per value. Anything else, and any record with a problem, is
validated by the model, whose errors say what is wrong (ADR 0330).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import JsonValue, ValidationError

from baton_common.envelope import (
    Envelope,
    EnvelopeError,
    Header,
    decode_record_finite,
    describe,
)
from baton_common.records import StepTask
from baton_common.trusted import assembled

__all__ = ["STEP_TASK", "TaskRejected", "read_task", "step_task_of"]

STEP_TASK: Final = StepTask.model_fields["type"].default
_FIELDS: Final = frozenset(StepTask.model_fields)
_REQUIRED: Final = frozenset(n for n, f in StepTask.model_fields.items() if f.is_required())
_TEXT: Final = ("run_id", "story_id", "step", "attempt_id", "action")
_INTEGERS: Final = ("story_version", "attempt")
# Every field's default, in field order (the required ones are always given here; a
# field with a default factory would need it called: the test comparing roads says so).
_DEFAULTS: Final = {name: field.default for name, field in StepTask.model_fields.items()}


class TaskRejected(Exception):
    """A record that is not a usable step task: ``reason`` (a metric label) and why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_task(
    value: bytes | None, headers: list[Header] | tuple[Header, ...]
) -> tuple[Envelope, StepTask]:
    """The task record's envelope and task.

    Raises:
        TaskRejected: ``not_cloudevent`` or ``not_step_task``, with the reason.
    """
    try:
        envelope, strict = decode_record_finite(value, headers)
    except EnvelopeError as exc:
        raise TaskRejected("not_cloudevent", str(exc)) from None
    if envelope.type != STEP_TASK:
        raise TaskRejected("not_step_task", f"type {envelope.type!r} is not {STEP_TASK}")
    try:
        return envelope, step_task_of(envelope.data, parsed_strictly=strict)
    except ValidationError as exc:
        raise TaskRejected("not_step_task", f"invalid StepTask: {describe(exc)}") from None


def step_task_of(data: Mapping[str, JsonValue], *, parsed_strictly: bool) -> StepTask:
    """``StepTask.model_validate(data)``, by the shorter road where it applies.

    ``parsed_strictly``: ``data`` is what orjson parsed (JSON types only, no NaN), so the
    task's ``input`` is a ``dict[str, JsonValue]`` that validation keeps as it is.

    Raises:
        ValidationError: as ``StepTask.model_validate`` does.
    """
    if parsed_strictly and _usual(data):
        # What trusted() does, less the name checks _usual made already
        state: dict[str, Any] = dict(_DEFAULTS)
        state.update(data)
        return assembled(StepTask, state, set(data))
    return StepTask.model_validate(data)


def _usual(data: Mapping[str, JsonValue]) -> bool:
    """Known fields only, the required ones given, each of the type validation keeps
    (``str``, ``int`` but not ``bool``, a dict input), the type literal, no policy grant
    (its model is validated)."""
    if type(data) is not dict or not (_REQUIRED <= data.keys() <= _FIELDS):
        return False
    if data.get("type", STEP_TASK) != STEP_TASK or data.get("policy") is not None:
        return False
    for name in _TEXT:
        if type(data[name]) is not str:
            return False
    for name in _INTEGERS:
        if type(data[name]) is not int:
            return False
    return type(data["input"]) is dict
