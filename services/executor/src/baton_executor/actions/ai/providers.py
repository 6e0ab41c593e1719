"""Chat model providers over plain HTTP: OpenAI-compatible chat completions and
Anthropic Messages (see ADR 0301 for why httpx and not the vendors' SDKs).

A conversation is kept in a neutral form (:class:`Turn`) and translated to each wire
format, so the same step code works with OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM
(all speak ``/chat/completions``) and Anthropic. Requests pass the same outbound guard
as ``http`` steps (SSRF policy, per-host limits, circuit breaker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from baton_executor.actions.outbound import safe_url, send, status_error
from baton_executor.errors import RetryableError
from baton_executor.guard import OutboundGuard

__all__ = [
    "AnthropicProvider",
    "ChatProvider",
    "Completion",
    "OpenAIProvider",
    "ProviderSettings",
    "ToolCall",
    "ToolSpec",
    "Turn",
    "build_provider",
]

ANTHROPIC_VERSION: Final = "2023-06-01"
_MAX_RESPONSE_BYTES: Final = 1024 * 1024


class ProviderSettings(BaseModel):
    """One configured model provider (``BATON_EXECUTOR_AI_PROVIDERS``, JSON by name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["openai", "anthropic"]
    base_url: str = Field(
        description="e.g. https://api.openai.com/v1 (…/chat/completions is appended) or "
        "https://api.anthropic.com (…/v1/messages is appended)"
    )
    model: str = Field(description="the default model of steps using this provider")
    api_key_secret: str | None = Field(
        default=None, description="name of the secret holding the API key (BATON_SECRET_<NAME>)"
    )
    api_key_header: str = Field(
        default="", description="header for the key; default Authorization: Bearer / x-api-key"
    )
    query: dict[str, str] = Field(
        default_factory=dict, description="query parameters, e.g. Azure's api-version"
    )
    timeout_seconds: float = Field(default=60.0, gt=0)


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: a name, what it does, and its JSON Schema."""

    name: str
    description: str
    parameters: dict[str, JsonValue]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, JsonValue]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, independent of the wire format."""

    role: Literal["user", "assistant", "tool"]
    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None


@dataclass(frozen=True)
class Completion:
    """What the model answered, with token usage and the raw body for the audit record."""

    text: str | None
    tool_calls: list[ToolCall]
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    raw: JsonValue = field(repr=False, default=None)


class ChatProvider(Protocol):
    """Sends one chat request and returns the completion."""

    name: str
    kind: str
    default_model: str

    async def complete(
        self,
        *,
        model: str,
        system: str,
        turns: list[Turn],
        tools: list[ToolSpec],
        force_tool: str | None,
        max_tokens: int,
    ) -> Completion: ...


class _HttpProvider:
    def __init__(
        self,
        name: str,
        settings: ProviderSettings,
        client: httpx.AsyncClient,
        guard: OutboundGuard | None,
        api_key: str | None,
    ) -> None:
        self.name: str = name
        self.kind: str = settings.kind
        self.default_model: str = settings.model
        self._settings = settings
        self._client = client
        self._guard = guard
        self._api_key = api_key

    async def _post(
        self, path: str, headers: dict[str, str], body: dict[str, JsonValue]
    ) -> JsonValue:
        url = httpx.URL(self._settings.base_url.rstrip("/") + path)
        if self._settings.query:
            url = url.copy_merge_params(self._settings.query)
        request = self._client.build_request(
            "POST", url, headers=headers, json=body, timeout=self._settings.timeout_seconds
        )
        reply = await send(
            self._client,
            self._guard,
            request,
            timeout_seconds=self._settings.timeout_seconds,
            max_bytes=_MAX_RESPONSE_BYTES,
        )
        if not 200 <= reply.status < 300:
            raise status_error(reply, f"{self.name} POST {safe_url(url)}", retryable=False)
        parsed = reply.body()
        if not isinstance(parsed, dict):
            raise RetryableError(
                f"{self.name}: the response is not a JSON object", error_type="InvalidModelResponse"
            )
        return parsed


class OpenAIProvider(_HttpProvider):
    """``POST {base_url}/chat/completions`` with function tools."""

    async def complete(
        self,
        *,
        model: str,
        system: str,
        turns: list[Turn],
        tools: list[ToolSpec],
        force_tool: str | None,
        max_tokens: int,
    ) -> Completion:
        messages: list[JsonValue] = [{"role": "system", "content": system}]
        messages.extend(_openai_message(turn) for turn in turns)
        body: dict[str, JsonValue] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        if force_tool is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": force_tool}}
        headers: dict[str, str] = {}
        if self._api_key is not None:
            header = self._settings.api_key_header or "Authorization"
            value = f"Bearer {self._api_key}" if header == "Authorization" else self._api_key
            headers[header] = value
        raw = await self._post("/chat/completions", headers, body)
        return _openai_completion(self.name, raw)


class AnthropicProvider(_HttpProvider):
    """``POST {base_url}/v1/messages`` with tools."""

    async def complete(
        self,
        *,
        model: str,
        system: str,
        turns: list[Turn],
        tools: list[ToolSpec],
        force_tool: str | None,
        max_tokens: int,
    ) -> Completion:
        body: dict[str, JsonValue] = {
            "model": model,
            "system": system,
            "messages": _anthropic_messages(turns),
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        if force_tool is not None:
            body["tool_choice"] = {"type": "tool", "name": force_tool}
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key is not None:
            headers[self._settings.api_key_header or "x-api-key"] = self._api_key
        raw = await self._post("/v1/messages", headers, body)
        return _anthropic_completion(self.name, raw)


def build_provider(
    name: str,
    settings: ProviderSettings,
    client: httpx.AsyncClient,
    guard: OutboundGuard | None,
    api_key: str | None,
) -> ChatProvider:
    """The provider for ``settings.kind``."""
    cls = OpenAIProvider if settings.kind == "openai" else AnthropicProvider
    return cls(name, settings, client, guard, api_key)


def _openai_message(turn: Turn) -> JsonValue:
    if turn.role == "tool":
        return {"role": "tool", "tool_call_id": turn.tool_call_id, "content": turn.text or ""}
    message: dict[str, JsonValue] = {"role": turn.role, "content": turn.text}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in turn.tool_calls
        ]
    return message


def _anthropic_messages(turns: list[Turn]) -> list[JsonValue]:
    messages: list[dict[str, JsonValue]] = []
    for turn in turns:
        if turn.role == "tool":
            block: JsonValue = {
                "type": "tool_result",
                "tool_use_id": turn.tool_call_id,
                "content": turn.text or "",
            }
            last = messages[-1] if messages else None
            # Results of one assistant turn's calls travel together in one user message.
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        elif turn.role == "user":
            messages.append({"role": "user", "content": turn.text or ""})
        else:
            content: list[JsonValue] = []
            if turn.text:
                content.append({"type": "text", "text": turn.text})
            content.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in turn.tool_calls
            )
            messages.append({"role": "assistant", "content": content})
    return list(messages)


def _invalid(provider: str, why: str) -> RetryableError:
    return RetryableError(
        f"{provider}: unexpected response: {why}", error_type="InvalidModelResponse"
    )


def _int(value: JsonValue) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _openai_completion(provider: str, raw: JsonValue) -> Completion:
    assert isinstance(raw, dict)
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _invalid(provider, "no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _invalid(provider, "no message")
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise _invalid(provider, "tool_calls is not a list")
    for call in raw_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(function, dict):
            raise _invalid(provider, "malformed tool call")
        arguments = function.get("arguments")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise _invalid(provider, "tool call arguments are not JSON") from None
        if not isinstance(parsed, dict):
            raise _invalid(provider, "tool call arguments are not an object")
        calls.append(ToolCall(str(call.get("id", "")), str(function.get("name", "")), parsed))
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    content = message.get("content")
    finish = choices[0].get("finish_reason")
    return Completion(
        text=content if isinstance(content, str) else None,
        tool_calls=calls,
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        stop_reason=finish if isinstance(finish, str) else None,
        raw=raw,
    )


def _anthropic_completion(provider: str, raw: JsonValue) -> Completion:
    assert isinstance(raw, dict)
    blocks = raw.get("content")
    if not isinstance(blocks, list):
        raise _invalid(provider, "no content")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(str(block["text"]))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                raise _invalid(provider, "tool_use input is not an object")
            calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")), arguments))
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    stop = raw.get("stop_reason")
    return Completion(
        text="".join(texts) or None,
        tool_calls=calls,
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        stop_reason=stop if isinstance(stop, str) else None,
        raw=raw,
    )
