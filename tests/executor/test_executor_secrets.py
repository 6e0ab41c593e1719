"""Secrets: resolved from the environment or mounted files, redacted from what is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import JsonValue

from baton_common.commands import CompleteStep, FailStep
from baton_common.records import StepTask
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.execution import execute
from baton_executor.secrets import REDACTED, Redactor, SecretNotFound, SecretStore

from .tasks import step_task

TOKEN = "tok-3f9a1c77e2"


def test_environment_first_then_mounted_files(tmp_path: Path) -> None:
    (tmp_path / "FROM_FILE").write_text("file-value\n")
    (tmp_path / "BOTH").write_text("file-loses")
    store = SecretStore({"BATON_SECRET_BOTH": "env-wins", "OTHER": "x"}, tmp_path)

    assert store.get("FROM_FILE") == "file-value"
    assert store.get("BOTH") == "env-wins"
    with pytest.raises(SecretNotFound, match="BATON_SECRET_OTHER"):
        store.get("OTHER")


def test_a_secret_too_short_to_redact_is_refused() -> None:
    with pytest.raises(SecretNotFound) as raised:
        SecretStore({"BATON_SECRET_PIN": "12"}).get("PIN")
    assert raised.value.error_type == "SecretTooShort"


def test_the_redactor_removes_values_from_text_and_json() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])

    assert redactor.text("x abcdefgh y abcd") == f"x {REDACTED} y {REDACTED}"
    assert redactor.json({"abcd": ["zabcdz", 1, None]}) == {REDACTED: [f"z{REDACTED}z", 1, None]}


class Echo:
    """Sees the resolved input; answers with it, or fails quoting it."""

    def __init__(self, error: type[Exception] | None = None) -> None:
        self.seen: list[StepTask] = []
        self.error = error

    async def __call__(self, task: StepTask) -> JsonValue:
        self.seen.append(task)
        if self.error is RetryableError:
            raise RetryableError(f"server said no to {task.input['auth']}", http_status=503)
        if self.error is not None:
            raise self.error(f"crashed holding {task.input['auth']}")
        return {"echo": task.input["auth"], "nested": [{"k": str(task.input["auth"])}]}


SECRETS = SecretStore({"BATON_SECRET_API_TOKEN": TOKEN})
INPUT: dict[str, JsonValue] = {"auth": "Bearer {{ secrets.API_TOKEN }}"}


async def test_the_action_sees_the_value_and_the_output_does_not() -> None:
    echo = Echo()
    task = step_task(INPUT)

    command = await execute(task, {"http": echo}, max_output_bytes=10_000, secrets=SECRETS)

    assert echo.seen[0].input == {"auth": f"Bearer {TOKEN}"}
    assert isinstance(command, CompleteStep)
    assert TOKEN not in command.model_dump_json()
    assert command.output == {
        "echo": f"Bearer {REDACTED}",
        "nested": [{"k": f"Bearer {REDACTED}"}],
    }


@pytest.mark.parametrize("error", [RetryableError, ValueError])
async def test_error_messages_are_redacted(
    error: type[Exception], capsys: pytest.CaptureFixture[str]
) -> None:
    command = await execute(
        step_task(INPUT), {"http": Echo(error)}, max_output_bytes=10_000, secrets=SECRETS
    )

    assert isinstance(command, FailStep)
    assert TOKEN not in command.model_dump_json()
    assert REDACTED in command.message
    assert TOKEN not in capsys.readouterr().out


async def test_an_unknown_secret_fails_permanently_without_running_the_action() -> None:
    echo = Echo()

    command = await execute(
        step_task({"auth": "{{ secrets.MISSING }}"}), {"http": echo}, max_output_bytes=10_000
    )

    assert isinstance(command, FailStep)
    assert (command.error_kind, command.error_type) == ("permanent", "SecretNotFound")
    assert echo.seen == []


def test_secret_not_found_is_permanent() -> None:
    assert issubclass(SecretNotFound, PermanentError)


def test_placeholders_are_found_in_inputs_orjson_cannot_encode() -> None:
    # An integer beyond 64 bits defeats the fast pre-check; the walk still finds the secret.
    store = SecretStore({"BATON_SECRET_API_TOKEN": TOKEN})
    value: dict[str, JsonValue] = {"n": 2**70, "auth": "Bearer {{ secrets.API_TOKEN }}"}

    resolved, redactor = store.resolve(value)

    assert resolved == {"n": 2**70, "auth": f"Bearer {TOKEN}"}
    assert redactor.text(f"x {TOKEN} y") == f"x {REDACTED} y"


def test_an_input_without_placeholders_is_used_as_is() -> None:
    value: dict[str, JsonValue] = {"url": "https://x.example/", "note": "{ { secrets.A }}"}

    resolved, redactor = SecretStore({}).resolve(value)

    assert resolved is value
    assert not redactor
