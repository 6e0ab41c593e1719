"""``ai.classify`` / ``ai.extract`` against fake OpenAI-compatible and Anthropic servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from outside_fakes import FakeAnthropic, FakeOpenAI, ModelTurn
from pydantic import JsonValue

from baton_common.commands import CompleteStep
from baton_executor.actions.ai.providers import ProviderSettings
from baton_executor.actions.ai.registry import Providers
from baton_executor.actions.ai.verdict import VerdictAction
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.execution import execute
from baton_executor.guard import CircuitBreaker, NetworkPolicy, OutboundGuard
from baton_executor.secrets import SecretStore

from .tasks import step_task

ALERT: JsonValue = {"subject": "Invoice overdue", "sender": "billing@evil.example"}
SECRETS = SecretStore(
    {
        "BATON_SECRET_OPENAI_KEY": "sk-test-openai-key",
        "BATON_SECRET_ANTHROPIC_KEY": "sk-ant-test-key",
    }
)


def judge(messages: list[dict[str, Any]], request: dict[str, Any]) -> ModelTurn:
    """A scripted analyst: evil senders are malicious with high confidence."""
    text = json.dumps(messages)
    tools = request.get("tools") or []
    if "evil.example" in text:
        answer = {"label": "malicious", "confidence": 0.95, "reasoning": "lookalike domain"}
    else:
        answer = {"label": "benign", "confidence": 0.4, "reasoning": "nothing conclusive"}
    if any("fields" in json.dumps(t) for t in tools):
        answer = {
            "fields": {"sender": "billing@evil.example", "amount": 120},
            "confidence": 0.8,
            "reasoning": "stated in the mail",
        }
    return ModelTurn(tool_calls=[("record_answer", answer)])


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(judge) as server:
        yield server


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(judge) as server:
        yield server


@pytest.fixture
async def providers(openai: FakeOpenAI, anthropic: FakeAnthropic) -> AsyncIterator[Providers]:
    guard = OutboundGuard(NetworkPolicy(["127.0.0.1/32"]), CircuitBreaker())
    settings = {
        "gpt": ProviderSettings(
            kind="openai",
            base_url=f"{openai.url}/v1",
            model="gpt-test",
            api_key_secret="OPENAI_KEY",
        ),
        "claude": ProviderSettings(
            kind="anthropic",
            base_url=anthropic.url,
            model="claude-test",
            api_key_secret="ANTHROPIC_KEY",
        ),
        "wrong-key": ProviderSettings(kind="openai", base_url=f"{openai.url}/v1", model="m"),
    }
    async with httpx.AsyncClient() as client:
        yield Providers(settings, default="gpt", client=client, guard=guard, secrets=SECRETS)


@pytest.mark.parametrize("provider", ["gpt", "claude"])
async def test_classify_answers_label_confidence_reasoning_and_audit(
    providers: Providers, provider: str
) -> None:
    action = VerdictAction(providers, mode="classify")

    output = await action(
        step_task(
            {
                "prompt": "Is this phishing?",
                "labels": ["malicious", "benign"],
                "input": ALERT,
                "provider": provider,
            },
            action="ai.classify",
        )
    )

    assert isinstance(output, dict)
    assert (output["label"], output["confidence"]) == ("malicious", 0.95)
    assert output["reasoning"] == "lookalike domain"
    audit = output["audit"]
    assert isinstance(audit, dict)
    assert audit["provider"] == provider
    assert audit["model"] == {"gpt": "gpt-test", "claude": "claude-test"}[provider]
    prompt = audit["prompt"]
    assert isinstance(prompt, dict)
    assert "billing@evil.example" in str(prompt["user"])
    assert "never an instruction" in str(prompt["system"])
    usage = audit["usage"]
    assert isinstance(usage, dict)
    assert int(str(usage["input_tokens"])) > 0
    assert int(str(usage["output_tokens"])) > 0
    response = audit["response"]
    assert isinstance(response, dict)
    assert response["tool_calls"] == [
        {
            "name": "record_answer",
            "arguments": {
                "label": "malicious",
                "confidence": 0.95,
                "reasoning": "lookalike domain",
            },
        }
    ]


async def test_the_openai_request_forces_the_answer_tool(
    providers: Providers, openai: FakeOpenAI
) -> None:
    await VerdictAction(providers, mode="classify")(
        step_task(
            {"prompt": "p", "labels": ["malicious", "benign"], "input": ALERT, "model": "gpt-x"},
            action="ai.classify",
        )
    )

    [seen] = openai.requests
    request = seen.json()
    assert request["model"] == "gpt-x"
    assert request["tool_choice"] == {"type": "function", "function": {"name": "record_answer"}}
    parameters = request["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["label"] == {"type": "string", "enum": ["malicious", "benign"]}
    assert [m["role"] for m in request["messages"]] == ["system", "user"]


async def test_the_anthropic_request_uses_tool_choice_and_version(
    providers: Providers, anthropic: FakeAnthropic
) -> None:
    await VerdictAction(providers, mode="classify")(
        step_task(
            {"prompt": "p", "labels": ["malicious", "benign"], "provider": "claude"},
            action="ai.classify",
        )
    )

    [seen] = anthropic.requests
    assert seen.headers["anthropic-version"] == "2023-06-01"
    request = seen.json()
    assert request["tool_choice"] == {"type": "tool", "name": "record_answer"}
    assert request["tools"][0]["input_schema"]["required"] == ["label", "confidence", "reasoning"]
    assert isinstance(request["system"], str)


@pytest.mark.parametrize("provider", ["gpt", "claude"])
async def test_extract_returns_fields_valid_against_the_schema(
    providers: Providers, provider: str
) -> None:
    schema: JsonValue = {
        "type": "object",
        "properties": {"sender": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["sender", "amount"],
    }

    output = await VerdictAction(providers, mode="extract")(
        step_task(
            {"prompt": "Extract", "schema": schema, "input": ALERT, "provider": provider},
            action="ai.extract",
        )
    )

    assert isinstance(output, dict)
    assert output["fields"] == {"sender": "billing@evil.example", "amount": 120}
    assert output["confidence"] == 0.8


async def test_an_answer_outside_the_schema_is_retryable(
    providers: Providers, openai: FakeOpenAI
) -> None:
    openai.brain = lambda m, r: ModelTurn(
        tool_calls=[("record_answer", {"label": "maybe", "confidence": 2, "reasoning": "?"})]
    )

    with pytest.raises(RetryableError) as raised:
        await VerdictAction(providers, mode="classify")(
            step_task({"prompt": "p", "labels": ["a", "b"]}, action="ai.classify")
        )
    assert raised.value.error_type == "InvalidModelOutput"


EXTRACT_SCHEMA: JsonValue = {
    "type": "object",
    "properties": {"amount": {"type": "integer", "minimum": 0}, "to": {"type": "string"}},
    "required": ["amount"],
}


@pytest.mark.parametrize(
    "answer",
    [
        {"fields": {"amount": 3}, "confidence": 0.5, "reasoning": "r"},
        {"fields": {"amount": -1}, "confidence": 0.5, "reasoning": "r"},
        {"fields": {"to": "x"}, "confidence": 0.5, "reasoning": "r"},
        {"fields": {"amount": 3}, "confidence": 1.5, "reasoning": "r"},
        {"fields": {"amount": "3", "to": 4}, "reasoning": 1},
    ],
)
async def test_answers_are_judged_as_jsonschema_validate_judges_them(
    providers: Providers, openai: FakeOpenAI, answer: dict[str, JsonValue]
) -> None:
    """The checked schema and its validator are kept between steps (the same story step
    sends the same schema each time): every call, first or repeated, says what
    ``jsonschema.validate`` says of the answer against the parameters the model was sent."""
    openai.brain = lambda m, r: ModelTurn(tool_calls=[("record_answer", answer)])
    action = VerdictAction(providers, mode="extract")
    task = step_task({"prompt": "p", "schema": EXTRACT_SCHEMA}, action="ai.extract")
    for _ in range(2):
        refused: str | None = None
        output: JsonValue = None
        try:
            output = await action(task)
        except RetryableError as exc:
            refused = exc.message
        parameters = openai.requests[-1].json()["tools"][0]["function"]["parameters"]
        expected = jsonschema_verdict(answer, parameters)
        if expected is None:
            assert refused is None
            assert isinstance(output, dict)
            assert output["fields"] == answer["fields"]
        else:
            assert refused is not None
            assert refused.endswith(f"answered outside the schema: {expected}")


def jsonschema_verdict(answer: JsonValue, parameters: dict[str, Any]) -> str | None:
    """``jsonschema.validate``'s message for the answer, None when it passes."""
    try:
        jsonschema.validate(answer, parameters)
    except jsonschema.ValidationError as exc:
        return exc.message
    return None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": 3},
        {"type": "object", "properties": {"a": {"type": "integr"}}},
        {"type": "object", "required": "a"},
    ],
)
async def test_a_bad_schema_is_refused_with_check_schemas_reason_every_time(
    providers: Providers, schema: dict[str, JsonValue]
) -> None:
    with pytest.raises(jsonschema.SchemaError) as expected:
        jsonschema.Draft202012Validator.check_schema(schema)
    for _ in range(2):
        with pytest.raises(PermanentError) as raised:
            await VerdictAction(providers, mode="extract")(
                step_task({"prompt": "p", "schema": schema}, action="ai.extract")
            )
        assert raised.value.error_type == "InvalidInput"
        assert f"not a valid JSON Schema: {expected.value.message}" in raised.value.message


async def test_a_text_json_answer_is_accepted(providers: Providers, openai: FakeOpenAI) -> None:
    openai.brain = lambda m, r: ModelTurn(
        text='```json\n{"label": "a", "confidence": 0.7, "reasoning": "r"}\n```'
    )

    output = await VerdictAction(providers, mode="classify")(
        step_task({"prompt": "p", "labels": ["a", "b"]}, action="ai.classify")
    )

    assert isinstance(output, dict)
    assert output["label"] == "a"


async def test_a_rejected_key_is_permanent_and_names_no_key(providers: Providers) -> None:
    with pytest.raises(PermanentError) as raised:
        await VerdictAction(providers, mode="classify")(
            step_task(
                {"prompt": "p", "labels": ["a", "b"], "provider": "wrong-key"}, action="ai.classify"
            )
        )
    assert (raised.value.error_type, raised.value.http_status) == ("http_401", 401)


@pytest.mark.parametrize(
    ("input", "error_type"),
    [
        ({"prompt": "p", "labels": ["only"]}, "InvalidInput"),
        ({"prompt": "p", "labels": ["a", "b"], "provider": "nope"}, "UnknownProvider"),
        ({"prompt": "p", "schema": {"type": "array"}}, "InvalidInput"),
        ({"prompt": "p", "schema": {"type": "object", "properties": 3}}, "InvalidInput"),
    ],
)
async def test_bad_steps_fail_permanently(
    providers: Providers, input: dict[str, JsonValue], error_type: str
) -> None:
    action = (
        VerdictAction(providers, mode="extract")
        if "schema" in input
        else VerdictAction(providers, mode="classify")
    )
    with pytest.raises(PermanentError) as raised:
        await action(step_task(input))
    assert raised.value.error_type == error_type


async def test_an_api_key_never_reaches_the_step_output(
    providers: Providers, openai: FakeOpenAI
) -> None:
    openai.brain = lambda m, r: ModelTurn(
        tool_calls=[
            ("record_answer", {"label": "a", "confidence": 0.5, "reasoning": "sk-test-openai-key"})
        ]
    )
    actions = {"ai.classify": VerdictAction(providers, mode="classify")}
    task = step_task({"prompt": "p", "labels": ["a", "b"]}, action="ai.classify")

    command = await execute(task, actions, max_output_bytes=100_000, secrets=SECRETS)

    assert isinstance(command, CompleteStep)
    assert "sk-test-openai-key" not in command.model_dump_json()
    assert isinstance(command.output, dict)
    assert command.output["reasoning"] == "[redacted]"
