"""From a task and its action's outcome to the command that reports it."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import JsonValue

from baton_common.commands import CompleteStep, FailStep
from baton_common.envelope import Envelope
from baton_common.records import StepTask
from baton_executor.actions import Action
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.execution import command_envelope, execute

from .tasks import step_task

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def returning(output: JsonValue) -> Action:
    async def action(task: StepTask) -> JsonValue:
        return output

    return action


def raising(exc: Exception) -> Action:
    async def action(task: StepTask) -> JsonValue:
        raise exc

    return action


async def test_success_completes_the_attempt_with_the_output() -> None:
    task = step_task()

    command = await execute(task, {"http": returning({"status": 200})}, max_output_bytes=1000)

    assert command == CompleteStep(
        run_id=task.run_id, step="lookup", attempt_id=task.attempt_id, output={"status": 200}
    )


async def test_a_retryable_error_fails_the_attempt_as_retryable() -> None:
    task = step_task()
    error = RetryableError(
        "POST https://x/ returned HTTP 503",
        error_type="http_503",
        http_status=503,
        retry_after_seconds=7.0,
    )

    command = await execute(task, {"http": raising(error)}, max_output_bytes=1000)

    assert command == FailStep(
        run_id=task.run_id,
        step="lookup",
        attempt_id=task.attempt_id,
        error_kind="retryable",
        error_type="http_503",
        message="POST https://x/ returned HTTP 503",
        attempt=1,
        http_status=503,
        retry_after_seconds=7.0,
    )


async def test_a_permanent_error_defaults_its_type_to_the_class_name() -> None:
    command = await execute(
        step_task(), {"http": raising(PermanentError("nope"))}, max_output_bytes=1000
    )

    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("permanent", "PermanentError")


async def test_an_unknown_action_kind_is_permanent() -> None:
    command = await execute(
        step_task(action="ai.classify"), {"http": returning(None)}, max_output_bytes=1000
    )

    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("permanent", "UnknownAction")
    assert "'ai.classify'" in command.message
    assert "http" in command.message


async def test_an_unexpected_exception_is_retryable_and_named() -> None:
    command = await execute(
        step_task(), {"http": raising(KeyError("status"))}, max_output_bytes=1000
    )

    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("retryable", "KeyError")


async def test_an_output_too_large_for_a_record_fails_permanently() -> None:
    command = await execute(
        step_task(), {"http": returning({"blob": "x" * 200})}, max_output_bytes=100
    )

    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("permanent", "OutputTooLarge")


def test_the_command_envelope_is_caused_by_the_task_record() -> None:
    task = step_task()
    cause = Envelope(
        id="task-record-1",
        type="baton.task.step.v1",
        source="baton/scheduler",
        time=NOW,
        correlationid="ingest-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    command = CompleteStep(run_id=task.run_id, step=task.step, attempt_id=task.attempt_id)

    envelope = command_envelope(command, task, cause, id="cmd-1", time=NOW)

    assert envelope.type == "baton.step.complete.v1"
    assert (envelope.id, envelope.subject, envelope.source) == (
        "cmd-1",
        task.run_id,
        "baton/executor",
    )
    assert (envelope.storyid, envelope.storyversion) == ("phishing-triage", 4)
    assert (envelope.causationid, envelope.correlationid) == ("task-record-1", "ingest-1")
    assert envelope.traceparent == cause.traceparent
    assert envelope.data["attempt_id"] == task.attempt_id


async def test_the_output_limit_counts_the_utf8_bytes_the_record_carries() -> None:
    # 40 characters of 2 bytes each: 80 bytes of UTF-8 (an ASCII-escaped encoding would
    # count 240 and refuse the output).
    output: JsonValue = {"t": "é" * 40}
    command = await execute(step_task(), {"http": returning(output)}, max_output_bytes=100)

    assert isinstance(command, CompleteStep)
    assert command.output == output

    command = await execute(step_task(), {"http": returning({"t": "é" * 60})}, max_output_bytes=100)
    assert isinstance(command, FailStep)
    assert command.error_type == "OutputTooLarge"
