"""Every call the world receives, recorded and queryable at ``GET /_calls``.

A plain ASGI middleware captures the request (method, path, query, headers, body) and the
answer's status; handlers add what the call *did* (``effect``), e.g. that an account was
suspended, or that a repeated ``Idempotency-Key`` was replayed without acting again.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Call", "CallLog", "RecordCalls", "calls_router", "note"]

Json = Any
_HIDDEN = ("/_", "/healthz", "/readyz")  # the world's own control and read-out routes


@dataclass
class Call:
    seq: int
    at: float
    service: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Json
    status: int = 0
    effect: dict[str, Json] = field(default_factory=dict)

    def as_json(self) -> dict[str, Json]:
        return {
            "seq": self.seq,
            "at": self.at,
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "idempotency_key": self.headers.get("idempotency-key"),
            "body": self.body,
            "status": self.status,
            "effect": self.effect,
        }


class CallLog:
    """Recorded calls, oldest first, bounded."""

    def __init__(self, limit: int) -> None:
        self._calls: deque[Call] = deque(maxlen=limit)
        self._seq = 0

    def add(self, call: Call) -> None:
        self._calls.append(call)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def query(
        self, *, service: str | None, path: str | None, contains: str | None, since: int
    ) -> list[Call]:
        found = []
        for call in self._calls:
            if call.seq <= since or (service and call.service != service):
                continue
            if path and path not in call.path:
                continue
            if contains and contains not in json.dumps(call.as_json()):
                continue
            found.append(call)
        return found

    def clear(self) -> None:
        self._calls.clear()


def note(request: Request, **effect: Json) -> None:
    """Add to what the current call did (shown under ``effect`` in ``/_calls``)."""
    request.scope.setdefault("state", {}).setdefault("effect", {}).update(effect)


def _decode(raw: bytes, content_type: str) -> Json:
    if not raw:
        return None
    text = raw.decode(errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class RecordCalls:
    """ASGI middleware: record each HTTP call (except the world's own read-outs)."""

    def __init__(self, app: ASGIApp, log: CallLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_HIDDEN):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        call = Call(
            seq=self.log.next_seq(),
            at=time.time(),
            service=path.strip("/").split("/", 1)[0] or "-",
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode(),
            headers=headers,
            body=_decode(raw, headers.get("content-type", "")),
        )
        self.log.add(call)
        state = scope.setdefault("state", {})
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                call.status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, replay, capture)
        finally:
            call.effect = dict(state.get("effect", {}))


def calls_router(log: CallLog) -> APIRouter:
    router = APIRouter()

    @router.get("/_calls")
    async def list_calls(
        service: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        since: int = 0,
    ) -> dict[str, Json]:
        """Recorded calls, oldest first: ``service`` (idp, slack, llm, …), a ``path``
        substring, any text they ``contain``, and only those after seq ``since``."""
        found = log.query(service=service, path=path, contains=contains, since=since)
        return {"count": len(found), "calls": [c.as_json() for c in found]}

    @router.delete("/_calls")
    async def clear_calls() -> dict[str, Json]:
        log.clear()
        return {"cleared": True}

    return router
