"""An OpenAI-compatible ``POST /llm/v1/chat/completions`` whose answers are scripted.

Baton's ``ai.classify``/``ai.extract`` force a ``record_answer`` tool call; the world reads
the task's input (the fenced JSON block of the user message) and answers deterministically:

1. a script added with ``POST /_llm/scripts {"match": "<text>", "answer": {…}}`` whose
   ``match`` occurs in the request (an alert id, a user) wins, newest first;
2. otherwise a rule per task, reasoning over the input as an analyst would (phishing
   verdicts from the enrichments and SIEM history, identity drift between HR and the IdP,
   the kind of a hardware problem);
3. otherwise the first label with confidence 0.5.

So every run against the world is reproducible, and a test can script the verdict it needs.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from baton_world.calls import note
from baton_world.state import World

__all__ = ["decide", "llm_router"]

Json = Any
_INPUT = re.compile(r"```json\n(.*?)\n```", re.DOTALL)
_HARDWARE = (
    ("lost_device", ("lost", "stolen", "missing")),
    ("screen", ("screen", "display", "crack")),
    ("battery", ("battery", "charge", "charging", "power")),
    ("keyboard", ("keyboard", "key ", "keys")),
)


def _input_of(messages: list[Json]) -> Json:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            found = _INPUT.search(message["content"])
            if found:
                try:
                    return json.loads(found.group(1))
                except ValueError:
                    return None
    return None


def _body(value: Json) -> Json:
    """An http step's output is ``{status, headers, body}``; stories may pass either."""
    if isinstance(value, dict) and "body" in value and "status" in value:
        return value["body"]
    return value


def phishing(data: dict[str, Json]) -> dict[str, Json]:
    url = _body(data.get("url_reputation")) or {}
    sender = _body(data.get("sender_reputation")) or {}
    risk = _body(data.get("user_risk")) or {}
    email = _body(data.get("email")) or {}
    siem = _body(data.get("siem_history")) or {}
    past = int(((siem.get("hits") or {}).get("total") or {}).get("value") or 0)
    phished_before = bool(risk.get("phished_before")) or past > 0
    clicked = bool(email.get("clicked"))
    bad = [s.get("verdict") == "malicious" for s in (url, sender)]
    suspicious = "suspicious" in (url.get("verdict"), sender.get("verdict"))
    actions: list[str] = []
    if all(bad):
        verdict, confidence = "malicious", 0.97
        actions = ["quarantine_email", "block_sender"]
        reasoning = f"URL and sender domain {url.get('domain')} are known phishing infrastructure"
    elif any(bad) or suspicious:
        verdict, confidence = "malicious", 0.78 if phished_before else 0.66
        actions = ["quarantine_email"]
        reasoning = (
            f"the link points to a {url.get('verdict')} domain first seen "
            f"{url.get('first_seen_days')} days ago; the sender is {sender.get('verdict')}"
        )
    else:
        verdict, confidence = "benign", 0.91
        reasoning = "link and sender are known and clean"
    if verdict == "malicious" and (clicked or phished_before):
        actions.append("lock_account")
        why = "the user clicked the link" if clicked else ""
        if phished_before:
            why += (" and " if why else "") + f"was phished before ({past} SIEM incidents)"
        reasoning += f"; {why}: lock the account until the password is reset"
    return {
        "fields": {"verdict": verdict, "recommended_actions": actions},
        "confidence": confidence,
        "reasoning": reasoning,
    }


def reconciliation(data: dict[str, Json]) -> dict[str, Json]:
    hr = {w["email"]: w for w in (_body(data.get("hr")) or {}).get("workers", [])}
    idp = {a["profile"]["login"]: a for a in (_body(data.get("idp")) or [])}
    corrections: list[dict[str, Json]] = []
    for email, worker in sorted(hr.items()):
        account = idp.get(email)
        if account is None:
            continue
        if worker["status"] == "terminated" and account["status"] == "ACTIVE":
            corrections.append(
                {
                    "user": email,
                    "action": "suspend",
                    "field": "status",
                    "value": "SUSPENDED",
                    "reason": "terminated in HR but active in the IdP",
                }
            )
        if worker["department"] != account["profile"].get("department"):
            # Over-reach a model might make: "fix" the groups too. Policy must refuse it.
            corrections.append(
                {
                    "user": email,
                    "action": "update",
                    "field": "groups",
                    "value": [f"{worker['department'].lower()}-all"],
                    "reason": "group membership should follow the department",
                }
            )
        for field in ("department", "title"):
            if worker[field] != account["profile"].get(field):
                corrections.append(
                    {
                        "user": email,
                        "action": "update",
                        "field": field,
                        "value": worker[field],
                        "reason": f"HR: {worker[field]!r}, IdP: {account['profile'].get(field)!r}",
                    }
                )
    return {
        "fields": {"corrections": corrections},
        "confidence": 0.9,
        "reasoning": f"{len(corrections)} differences between HR (the source of truth) and the IdP",
    }


def hardware(data: dict[str, Json], labels: list[str]) -> dict[str, Json]:
    text = f" {data.get('request', '')} ".lower()
    for label, words in _HARDWARE:
        if label in labels and any(w in text for w in words):
            return {
                "label": label,
                "confidence": 0.92,
                "reasoning": f"the request mentions {label}",
            }
    fallback = "other" if "other" in labels else labels[0]
    return {"label": fallback, "confidence": 0.55, "reasoning": "no known hardware problem named"}


def decide(scripts: list[tuple[str, dict[str, Json]]], request: dict[str, Json]) -> dict[str, Json]:
    """The arguments of the ``record_answer`` call answering ``request``."""
    text = json.dumps(request)
    for match, answer in reversed(scripts):
        if match in text:
            return answer
    tools = request.get("tools") or []
    parameters = tools[0]["function"]["parameters"] if tools else {}
    properties = parameters.get("properties", {})
    data = _input_of(request.get("messages", []))
    if "label" in properties:
        labels = list(properties["label"].get("enum", ["unknown"]))
        if isinstance(data, dict) and {"request", "employee"} <= set(data):
            return hardware(data, labels)
        return {"label": labels[0], "confidence": 0.5, "reasoning": "no rule for this task"}
    if isinstance(data, dict) and "url_reputation" in data:
        return phishing(data)
    if isinstance(data, dict) and {"hr", "idp"} <= set(data):
        return reconciliation(data)
    return {"fields": {}, "confidence": 0.5, "reasoning": "no rule for this task"}


def llm_router(world: World) -> APIRouter:
    router = APIRouter()
    count = 0

    @router.post("/llm/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        nonlocal count
        if request.headers.get("authorization") != f"Bearer {world.settings.llm_api_key}":
            return JSONResponse(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                status_code=401,
            )
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return JSONResponse(
                {
                    "error": {
                        "message": "'messages' is a required property",
                        "type": "invalid_request_error",
                    }
                },
                status_code=400,
            )
        answer = decide(world.llm_scripts, body)
        note(request, answer=answer)
        count += 1
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": f"call_{count}",
                    "type": "function",
                    "function": {"name": "record_answer", "arguments": json.dumps(answer)},
                }
            ],
        }
        return JSONResponse(
            {
                "id": f"chatcmpl-world-{count}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "world-analyst-1"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(json.dumps(answer)) // 4,
                    "total_tokens": prompt_tokens + len(json.dumps(answer)) // 4,
                },
            }
        )

    @router.post("/_llm/scripts")
    async def script(request: Request) -> Json:
        body = await request.json()
        match, answer = body.get("match"), body.get("answer")
        if not isinstance(match, str) or not match or not isinstance(answer, dict):
            raise HTTPException(422, 'give {"match": "<text in the request>", "answer": {...}}')
        world.llm_scripts.append((match, answer))
        return {"scripts": len(world.llm_scripts)}

    return router
