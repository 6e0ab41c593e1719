"""Outside services the executor talks to, as real HTTP servers on 127.0.0.1.

Each speaks the real wire format of the service it stands for: an OpenAI-compatible
``/v1/chat/completions``, the Anthropic ``/v1/messages`` endpoint, the Slack Web API's
``chat.postMessage`` and a generic enrichment API. They record every request, check
credentials like the real ones do, and answer from a scripted ``brain``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
from local_http import LocalHttpServer

Json = Any


@dataclass
class Seen:
    method: str
    path: str
    headers: httpx.Headers  # header names are case-insensitive
    body: bytes

    def json(self) -> Json:
        return json.loads(self.body)


@dataclass
class ModelTurn:
    """What the scripted model answers: text, tool calls, or both."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Json]]] = field(default_factory=list)


Brain = Callable[[list[dict[str, Json]], dict[str, Json]], ModelTurn]
"""(messages in the provider's own format, the whole request) → the model's turn."""


class _Server(LocalHttpServer):
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, httpx.Headers(self.headers.items()), body)
                outer.requests.append(seen)
                status, headers, payload = outer.handle(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.serve(Handler, daemon_threads=True, poll_interval=0.05)

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.root


def _json(status: int, payload: Json, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


class FakeOpenAI(_Server):
    """``POST /v1/chat/completions`` as OpenAI answers it (tools, usage, errors)."""

    def __init__(self, brain: Brain, api_key: str = "sk-test-openai-key") -> None:
        super().__init__()
        self.brain = brain
        self.api_key = api_key

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path.split("?")[0] != "/v1/chat/completions" or seen.method != "POST":
            return _json(
                404, {"error": {"message": "Unknown request URL", "type": "invalid_request_error"}}
            )
        if seen.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        request = seen.json()
        if not isinstance(request.get("messages"), list) or "model" not in request:
            return _json(
                400,
                {
                    "error": {
                        "message": "'messages' is a required property",
                        "type": "invalid_request_error",
                    }
                },
            )
        turn = self.brain(request["messages"], request)
        message: dict[str, Json] = {"role": "assistant", "content": turn.text, "refusal": None}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": n, "arguments": json.dumps(a)},
                }
                for i, (n, a) in enumerate(turn.tool_calls)
            ]
        prompt_tokens = len(seen.body) // 4
        completion_tokens = len(json.dumps(message)) // 4
        return _json(
            200,
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if turn.tool_calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class FakeAnthropic(_Server):
    """``POST /v1/messages`` as Anthropic answers it (tool_use blocks, usage, errors)."""

    def __init__(self, brain: Brain, api_key: str = "sk-ant-test-key") -> None:
        super().__init__()
        self.brain = brain
        self.api_key = api_key

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path != "/v1/messages" or seen.method != "POST":
            return _json(
                404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
            )
        if seen.headers.get("x-api-key") != self.api_key:
            return _json(
                401,
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
            )
        if not seen.headers.get("anthropic-version"):
            return _json(
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic-version: header is required",
                    },
                },
            )
        request = seen.json()
        if "max_tokens" not in request or not isinstance(request.get("messages"), list):
            return _json(
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "max_tokens: Field required",
                    },
                },
            )
        turn = self.brain(request["messages"], request)
        content: list[Json] = []
        if turn.text:
            content.append({"type": "text", "text": turn.text})
        content.extend(
            {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a}
            for i, (n, a) in enumerate(turn.tool_calls)
        )
        return _json(
            200,
            {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": request["model"],
                "content": content,
                "stop_reason": "tool_use" if turn.tool_calls else "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": len(seen.body) // 4,
                    "output_tokens": len(json.dumps(content)) // 4,
                },
            },
        )


class FakeSlack(_Server):
    """The Slack Web API's ``chat.postMessage`` (HTTP 200 with ``ok`` true or false)."""

    def __init__(self, token: str = "xoxb-test-slack-token") -> None:
        super().__init__()
        self.token = token
        self.posted: list[dict[str, Json]] = []

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path != "/api/chat.postMessage":
            return _json(404, {"ok": False, "error": "unknown_method"})
        if seen.headers.get("Authorization") != f"Bearer {self.token}":
            return _json(200, {"ok": False, "error": "invalid_auth"})
        message = seen.json()
        if not message.get("channel"):
            return _json(200, {"ok": False, "error": "channel_not_found"})
        if not message.get("text") and not message.get("blocks"):
            return _json(200, {"ok": False, "error": "no_text"})
        self.posted.append(message)
        ts = f"{1700000000 + len(self.posted)}.000100"
        return _json(
            200,
            {
                "ok": True,
                "channel": message["channel"],
                "ts": ts,
                "message": {"text": message.get("text", ""), "ts": ts},
            },
        )


class FakeApi(_Server):
    """A generic enrichment API: ``respond(seen)`` → (status, JSON body[, headers])."""

    def __init__(self, respond: Callable[[Seen], tuple[int, Json]] | None = None) -> None:
        super().__init__()
        self.respond = respond or (lambda seen: (200, {"ok": True}))

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        status, payload = self.respond(seen)
        return _json(status, payload)
