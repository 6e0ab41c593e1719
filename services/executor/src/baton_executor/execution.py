"""From a step task to the command that reports its outcome.

``execute`` runs the task's action and never raises: every outcome, including an
unknown action or an unexpected bug, becomes a ``CompleteStep`` or a ``FailStep``.
Secret placeholders in the input are resolved just before the action runs, and every
value resolved is redacted from the output and the error message it reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import orjson
import structlog
from pydantic import JsonValue

from baton_common.commands import CompleteStep, FailStep
from baton_common.envelope import Envelope, unchecked_envelope
from baton_common.kafka import OutboundRecord
from baton_common.outbound_records import record
from baton_common.records import StepTask
from baton_common.telemetry import current_traceparent
from baton_common.trusted import json_types_only, trusted
from baton_executor.actions import Action
from baton_executor.errors import ActionError, PermanentError, RetryableError
from baton_executor.secrets import Redactor, SecretStore

__all__ = ["command_envelope", "command_record", "completed", "execute", "failed"]

log = structlog.get_logger(__name__)

StepCommand = CompleteStep | FailStep
_SOURCE: Final = "baton/executor"
MAX_MESSAGE_CHARS: Final = 2000


def completed(task: StepTask, output: JsonValue) -> CompleteStep:
    """The command reporting a successful attempt.

    An output of JSON types only (what a JSON parser returns: the usual case) is taken
    as it is; validating it again would walk it with a Python discriminator per value.
    The task's ids were validated with the task.
    """
    if json_types_only(output):
        return trusted(
            CompleteStep,
            run_id=task.run_id,
            step=task.step,
            attempt_id=task.attempt_id,
            output=output,
        )
    return CompleteStep(
        run_id=task.run_id, step=task.step, attempt_id=task.attempt_id, output=output
    )


def failed(task: StepTask, error: ActionError, redactor: Redactor | None = None) -> FailStep:
    """The command reporting a failed attempt; ``error``'s type says whether to retry."""
    message = redactor.text(error.message) if redactor else error.message
    return FailStep(
        run_id=task.run_id,
        step=task.step,
        attempt_id=task.attempt_id,
        error_kind=error.kind,
        error_type=error.error_type,
        message=message[:MAX_MESSAGE_CHARS],
        attempt=task.attempt,
        http_status=error.http_status,
        retry_after_seconds=error.retry_after_seconds,
        policy=getattr(error, "decision", None),  # a PolicyViolation's (ADR 0910)
    )


_NO_SECRETS: Final = SecretStore({})


async def execute(
    task: StepTask,
    actions: Mapping[str, Action],
    *,
    max_output_bytes: int,
    secrets: SecretStore = _NO_SECRETS,
) -> StepCommand:
    """Run ``task``'s action and return the command reporting the outcome."""
    action = actions.get(task.action)
    if action is None:
        known = ", ".join(sorted(actions)) or "none"
        return failed(
            task,
            PermanentError(
                f"unknown action kind {task.action!r} (this executor runs: {known})",
                error_type="UnknownAction",
            ),
        )
    try:
        resolved, redactor = secrets.resolve(task.input)
    except ActionError as exc:
        return failed(task, exc)
    try:
        output = await action(task.model_copy(update={"input": resolved}) if redactor else task)
    except ActionError as exc:
        return failed(task, exc, redactor)
    except Exception as exc:
        # A bug in an action, not a verdict on the step: let the retry policy decide.
        # No traceback in the log: its frames' text could hold resolved secrets.
        error = RetryableError(f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
        log.error(
            "action raised an unexpected error",
            action=task.action,
            error=redactor.text(error.message),
        )
        return failed(task, error, redactor)
    output = redactor.json(output)
    size = _encoded_size(output)
    if size > max_output_bytes:
        return failed(
            task,
            PermanentError(
                f"output is {size} bytes; the limit is {max_output_bytes}",
                error_type="OutputTooLarge",
            ),
        )
    return completed(task, output)


def _encoded_size(output: JsonValue) -> int:
    """Bytes of ``output`` as the command's record carries it (compact UTF-8 JSON)."""
    try:
        return len(orjson.dumps(output))
    except (orjson.JSONEncodeError, TypeError):  # beyond orjson (huge integers): as written
        return len(json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode())


def command_envelope(
    command: StepCommand, task: StepTask, cause: Envelope, *, id: str, time: datetime
) -> Envelope:
    """The ``baton.commands`` envelope of ``command``, caused by the task record ``cause``.

    Equal to ``to_envelope`` of the command with these attributes (a test compares them),
    without validating attributes the executor set itself: ids and the story's id and
    version come from the validated task and its envelope, ``time`` from the clock.
    """
    if isinstance(command, CompleteStep) and json_types_only(command.output):
        # model_dump(mode="json") of its text fields; the output holds JSON types already
        data: dict[str, JsonValue] = {
            "run_id": command.run_id,
            "type": command.type,
            "step": command.step,
            "attempt_id": command.attempt_id,
            "output": command.output,
        }
    else:
        data = command.model_dump(mode="json")
    return unchecked_envelope(
        {
            "id": id,
            "type": data["type"],
            "source": _SOURCE,
            "time": time,
            "subject": task.run_id,
            "storyid": task.story_id,
            "storyversion": task.story_version,
            "actor": _SOURCE,
            "correlationid": cause.correlationid,
            "causationid": cause.id,
            "traceparent": current_traceparent(cause.traceparent),
        },
        data,
    )


def command_record(
    command: StepCommand, task: StepTask, cause: Envelope, *, topic: str, id: str, time: datetime
) -> OutboundRecord:
    """:func:`command_envelope` as the record for ``topic`` (keyed by the run), encoded by
    the shared direct encoder (the bytes of ``encode_record``)."""
    envelope = command_envelope(command, task, cause, id=id, time=time)
    return record(topic, task.run_id, envelope)
