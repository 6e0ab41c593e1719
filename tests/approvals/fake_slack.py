"""A fake Slack on 127.0.0.1: the Web API methods Baton calls, and callbacks signed like Slack's.

It speaks the real wire formats: Web API calls are POSTs with a bearer token and a JSON or
form body, answered ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; interaction
callbacks are ``application/x-www-form-urlencoded`` with a JSON ``payload`` field, signed
``v0=HMAC-SHA256(signing_secret, "v0:<timestamp>:<body>")``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode

from local_http import LocalHttpServer

BOT_TOKEN = "xoxb-test-bot-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    history: list[list[dict[str, Any]]] = field(default_factory=list)


class FakeSlack(LocalHttpServer):
    """chat.postMessage / chat.update / chat.postEphemeral / views.open / users.info."""

    def __init__(self, emails: dict[str, str] | None = None) -> None:
        self.calls: list[SlackCall] = []
        self.messages: dict[str, Message] = {}
        self.emails = emails or {}
        self.fail_next: list[str] = []  # errors to answer, in order, to any chat.* call
        self.views: list[dict[str, Any]] = []  # modals opened with views.open
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                method = self.path.rsplit("/", 1)[-1]
                if self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
                    return self._answer({"ok": False, "error": "invalid_auth"})
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    args = json.loads(raw)
                else:
                    args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                self._answer(outer.handle(method, args))

            def _answer(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)  # Slack answers errors with 200 and ok: false
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.serve(Handler)

    def handle(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(SlackCall(method, args))
            if method.startswith("chat.") and self.fail_next:
                return {"ok": False, "error": self.fail_next.pop(0)}
            if method == "chat.postMessage":
                if not args.get("channel") or not args.get("text"):
                    return {"ok": False, "error": "invalid_arguments"}
                ts = f"{1700000000 + next(self._ts)}.000100"
                channel = "C" + hashlib.sha1(args["channel"].encode()).hexdigest()[:8].upper()
                self.messages[ts] = Message(channel, ts, args["text"], args.get("blocks", []))
                return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args["text"]}}
            if method == "chat.update":
                message = self.messages.get(args.get("ts", ""))
                if message is None or message.channel != args.get("channel"):
                    return {"ok": False, "error": "message_not_found"}
                message.history.append(message.blocks)
                message.text, message.blocks = args["text"], args.get("blocks", [])
                return {"ok": True, "channel": message.channel, "ts": message.ts}
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": f"{time.time():.6f}"}
            if method == "views.open":
                view = args.get("view")
                if not args.get("trigger_id") or not isinstance(view, dict):
                    return {"ok": False, "error": "invalid_arguments"}
                self.views.append(view)
                return {"ok": True, "view": {"id": f"V{len(self.views)}", **view}}
            if method == "users.info":
                email = self.emails.get(args.get("user", ""))
                if email is None:
                    return {"ok": False, "error": "user_not_found"}
                return {"ok": True, "user": {"id": args["user"], "profile": {"email": email}}}
            return {"ok": False, "error": "unknown_method"}

    @property
    def api_url(self) -> str:
        return f"{self.root}/api"

    def calls_of(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def message_for(self, gate_id: str) -> Message | None:
        with self._lock:
            for message in self.messages.values():
                if gate_id in json.dumps(message.blocks):
                    return message
        return None


def button_press(
    message: Message,
    *,
    user: str,
    action: str,
    secret: str = SIGNING_SECRET,
    at: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends when ``user`` presses a button of ``message``."""
    button = next(
        e
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b["elements"]
        if e["action_id"] == action
    )
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "team": {"id": "T1", "domain": "baton-test"},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "channel": {"id": message.channel, "name": "approvals"},
        "message": {"ts": message.ts, "text": message.text},
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "b",
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, signed_headers(body, secret=secret, at=at)


def signed_headers(
    body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def modal_submission(
    view: dict[str, Any], *, user: str, comment: str | None, secret: str = SIGNING_SECRET
) -> tuple[bytes, dict[str, str]]:
    """What Slack sends when ``user`` submits ``view`` (a modal) with ``comment`` typed in."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] == "input":
            element = block["element"]
            values[block["block_id"]] = {
                element["action_id"]: {"type": element["type"], "value": comment}
            }
    payload = {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "team": {"id": "T1", "domain": "baton-test"},
        "trigger_id": "4.5.6",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": values},
        },
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, signed_headers(body, secret=secret)
