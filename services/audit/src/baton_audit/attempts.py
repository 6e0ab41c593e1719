"""Pure mappings from step events to ``step_attempts`` and ``ai_interactions`` rows.

An AI interaction is what an AI step reports under the ``ai`` key of its output
(``output.ai``: provider, model, prompt, response, tool_calls, usage), or, for an
``ai.*`` action that reports no such object, its input and whole output. Unknown or
missing fields are tolerated: the whole ``ai`` object is kept in ``record``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import JsonValue

from baton_common.envelope import Envelope
from baton_common.events import RunEvent, StepDispatched, StepFailed, StepSucceeded

__all__ = [
    "AI_KEY",
    "AiInteraction",
    "AttemptFinished",
    "AttemptStarted",
    "ai_interaction",
    "attempt_change",
]

AI_KEY = "ai"


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    attempt_id: str
    run_id: str
    step: str
    attempt: int
    action: str
    queue: str
    input: dict[str, JsonValue]
    dispatched_at: datetime
    dispatched_event_id: str


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    attempt_id: str
    run_id: str
    step: str
    attempt: int
    outcome: str
    finished_at: datetime
    finished_event_id: str
    output: JsonValue
    error_kind: str | None
    error_type: str | None
    error_message: str | None
    will_retry: bool | None


# Each event class has its own ``type`` (the union's discriminator): an event of another
# type matches none of the class patterns of ``attempt_change``.
_ATTEMPT_TYPES: Final = frozenset(
    kind.model_fields["type"].default for kind in (StepDispatched, StepSucceeded, StepFailed)
)


def attempt_change(
    envelope: Envelope, event: RunEvent | None
) -> AttemptStarted | AttemptFinished | None:
    """What an event changes in ``step_attempts``, if anything."""
    if event is None or event.type not in _ATTEMPT_TYPES:
        return None  # most events: no walk through the class patterns below
    match event:
        case StepDispatched():
            return AttemptStarted(
                attempt_id=event.attempt_id,
                run_id=event.run_id,
                step=event.step,
                attempt=event.attempt,
                action=event.action,
                queue=event.queue,
                input=event.input,
                dispatched_at=envelope.time,
                dispatched_event_id=envelope.id,
            )
        case StepSucceeded():
            return AttemptFinished(
                attempt_id=event.attempt_id,
                run_id=event.run_id,
                step=event.step,
                attempt=event.attempt,
                outcome="succeeded",
                finished_at=envelope.time,
                finished_event_id=envelope.id,
                output=event.output,
                error_kind=None,
                error_type=None,
                error_message=None,
                will_retry=None,
            )
        case StepFailed():
            return AttemptFinished(
                attempt_id=event.attempt_id,
                run_id=event.run_id,
                step=event.step,
                attempt=event.attempt,
                outcome="failed",
                finished_at=envelope.time,
                finished_event_id=envelope.id,
                output=None,
                error_kind=str(event.error_kind),
                error_type=event.error_type,
                error_message=event.message,
                will_retry=event.will_retry,
            )
        case _:
            return None


@dataclass(frozen=True, slots=True)
class AiInteraction:
    attempt_id: str
    run_id: str
    step: str
    attempt: int
    action: str | None
    provider: str | None
    model: str | None
    prompt: JsonValue
    response: JsonValue
    tool_calls: JsonValue
    input_tokens: int | None
    output_tokens: int | None
    occurred_at: datetime
    event_id: str
    record: dict[str, JsonValue]


def _text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ai_interaction(
    finished: AttemptFinished, *, action: str | None, input: JsonValue
) -> AiInteraction | None:
    """The AI interaction a succeeded attempt reports, if it is one.

    Args:
        finished: the attempt's outcome.
        action: the attempt's action, from its dispatch (None if the dispatch is unknown).
        input: the attempt's input, from its dispatch.
    """
    if finished.outcome != "succeeded":
        return None
    output = finished.output
    reported = output.get(AI_KEY) if isinstance(output, dict) else None
    if isinstance(reported, dict):
        record: dict[str, JsonValue] = dict(reported)
    elif action is not None and action.startswith("ai."):
        record = {"prompt": input, "response": output}
    else:
        return None
    usage = record.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return AiInteraction(
        attempt_id=finished.attempt_id,
        run_id=finished.run_id,
        step=finished.step,
        attempt=finished.attempt,
        action=action,
        provider=_text(record.get("provider")),
        model=_text(record.get("model")),
        prompt=record.get("prompt", record.get("messages")),
        response=record.get("response"),
        tool_calls=record.get("tool_calls"),
        input_tokens=_count(usage.get("input_tokens", usage.get("prompt_tokens"))),
        output_tokens=_count(usage.get("output_tokens", usage.get("completion_tokens"))),
        occurred_at=finished.finished_at,
        event_id=finished.finished_event_id,
        record=record,
    )
