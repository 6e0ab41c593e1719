"""The Slack Web API (``/slack/api/<method>``) and people pressing buttons in it.

Web API calls are POSTs with ``Authorization: Bearer <bot token>`` and a JSON or form body,
answered HTTP 200 with ``{"ok": true, …}`` or ``{"ok": false, "error": "…"}``.
``POST /_slack/press`` plays a person pressing Approve or Deny on a gate's message: the
world sends the approvals service the ``block_actions`` callback Slack would send, signed
``v0=HMAC-SHA256(signing secret, "v0:<timestamp>:<body>")``; for Deny it then submits the
modal the service opened, with the comment typed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import APIRouter, HTTPException, Request

from baton_world.state import World

__all__ = ["slack_router"]

Json = Any


def signed(body: bytes, secret: str) -> dict[str, str]:
    """Headers Slack puts on a callback carrying ``body``."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


class SlackWorkspace:
    """Messages and modals, by ``ts``; the methods Baton calls."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.messages: dict[str, dict[str, Json]] = {}
        self.views: list[dict[str, Json]] = []
        self._ts = 0

    def call(self, method: str, args: dict[str, Json]) -> dict[str, Json]:
        if method == "chat.postMessage":
            if not args.get("channel") or not (args.get("text") or args.get("blocks")):
                return {"ok": False, "error": "invalid_arguments"}
            self._ts += 1
            ts = f"{1_700_000_000 + self._ts}.000100"
            channel = args["channel"]
            if channel.startswith("#"):
                channel = "C" + hashlib.sha1(channel.encode()).hexdigest()[:8].upper()
            blocks = args.get("blocks") or []
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            self.messages[ts] = {
                "channel": channel,
                "channel_name": args["channel"],
                "ts": ts,
                "text": args.get("text", ""),
                "blocks": blocks,
                "thread_ts": args.get("thread_ts"),
                "updates": 0,
            }
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
        if method == "chat.update":
            message = self.messages.get(args.get("ts", ""))
            if message is None or message["channel"] != args.get("channel"):
                return {"ok": False, "error": "message_not_found"}
            message["text"] = args.get("text", message["text"])
            message["blocks"] = args.get("blocks", message["blocks"])
            message["updates"] += 1
            return {"ok": True, "channel": message["channel"], "ts": message["ts"]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method == "views.open":
            view = args.get("view")
            if isinstance(view, str):
                view = json.loads(view)
            if not args.get("trigger_id") or not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments"}
            self.views.append({"trigger_id": args["trigger_id"], **view})
            return {"ok": True, "view": {"id": f"V{len(self.views)}", **view}}
        if method == "users.info":
            email = self.world.settings.slack_emails.get(args.get("user", ""))
            if email is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": args["user"], "profile": {"email": email}}}
        if method == "auth.test":
            return {"ok": True, "team": "world", "user": "baton", "bot_id": "B0BATON"}
        return {"ok": False, "error": "unknown_method"}

    def message_for(self, gate_id: str) -> dict[str, Json] | None:
        found = [m for m in self.messages.values() if gate_id in json.dumps(m["blocks"])]
        return found[-1] if found else None


def _press_payload(message: dict[str, Json], user: str, action: str, trigger: str) -> Json:
    button = next(
        (
            element
            for block in message["blocks"]
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if action in str(element.get("action_id", ""))
        ),
        None,
    )
    if button is None:
        raise HTTPException(409, f"the message shows no {action} button (already decided?)")
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0WORLD"},
        "team": {"id": "T0WORLD", "domain": "world"},
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": message["channel"],
        },
        "channel": {"id": message["channel"], "name": message["channel_name"]},
        "message": {"ts": message["ts"], "text": message["text"]},
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": trigger,
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "actions",
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _submission(view: dict[str, Json], user: str, comment: str | None) -> Json:
    values: dict[str, Json] = {}
    for block in view.get("blocks", []):
        if block.get("type") == "input":
            element = block["element"]
            values[block["block_id"]] = {
                element["action_id"]: {"type": element["type"], "value": comment}
            }
    return {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower(), "team_id": "T0WORLD"},
        "team": {"id": "T0WORLD", "domain": "world"},
        "trigger_id": f"{time.time():.6f}",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": view.get("callback_id"),
            "private_metadata": view.get("private_metadata"),
            "state": {"values": values},
        },
    }


def slack_router(world: World, http: httpx.AsyncClient) -> APIRouter:
    router = APIRouter()
    workspace = SlackWorkspace(world)

    @router.post("/slack/api/{method}")
    async def web_api(method: str, request: Request) -> dict[str, Json]:
        if request.headers.get("authorization") != f"Bearer {world.settings.slack_bot_token}":
            return {"ok": False, "error": "invalid_auth"}
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            args = json.loads(raw or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        return workspace.call(method, args)

    @router.get("/_slack/messages")
    async def messages(channel: str | None = None, contains: str | None = None) -> Json:
        found = [
            m
            for m in workspace.messages.values()
            if (channel is None or channel in (m["channel"], m["channel_name"]))
            and (contains is None or contains in json.dumps(m))
        ]
        return {"messages": found}

    async def callback(payload: Json) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await http.post(
            f"{world.settings.approvals_url}/slack/interactions",
            content=body,
            headers=signed(body, world.settings.slack_signing_secret),
            timeout=30,
        )

    @router.post("/_slack/press")
    async def press(request: Request) -> Json:
        """``{"gate_id", "user": "U0ALICE", "action": "approve"|"deny", "comment"}``."""
        body = await request.json()
        gate_id, action = body.get("gate_id"), body.get("action")
        user = body.get("user", "U0ALICE")
        if not isinstance(gate_id, str) or action not in ("approve", "deny"):
            raise HTTPException(422, "give gate_id and action (approve or deny)")
        message = workspace.message_for(gate_id)
        if message is None:
            raise HTTPException(404, f"no Slack message shows gate {gate_id} (yet)")
        trigger = f"{time.time():.6f}.world"
        answer = await callback(_press_payload(message, user, action, trigger))
        result: dict[str, Json] = {"press": {"status": answer.status_code, "body": answer.text}}
        view = next((v for v in workspace.views if v["trigger_id"] == trigger), None)
        if action == "deny" and view is not None:
            submit = await callback(_submission(view, user, body.get("comment")))
            result["modal"] = {"status": submit.status_code, "body": submit.text}
        return result

    return router
