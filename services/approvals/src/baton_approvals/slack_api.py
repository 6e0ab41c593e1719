"""The few Slack Web API methods the service calls, over an injected ``httpx.AsyncClient``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import httpx

from baton_approvals.metrics import SLACK_CALLS

__all__ = ["SlackApiError", "SlackClient"]

JsonObject = Mapping[str, object]
_RATE_LIMITED: Final = 429


class SlackApiError(Exception):
    """A Slack call failed: an HTTP error, or ``"ok": false`` with Slack's error code."""


class SlackClient:
    """``chat.postMessage``/``update``/``postEphemeral``, ``views.open`` and ``users.info``."""

    def __init__(self, http: httpx.AsyncClient, *, api_url: str, bot_token: str) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {bot_token}"}

    async def _call(self, method: str, body: JsonObject, *, form: bool = False) -> JsonObject:
        try:
            answer = await self._send(method, body, form=form)
        except SlackApiError:
            SLACK_CALLS.labels(method, "error").inc()
            raise
        SLACK_CALLS.labels(method, "ok").inc()
        return answer

    async def _send(self, method: str, body: JsonObject, *, form: bool) -> JsonObject:
        url = f"{self._api_url}/{method}"
        try:
            if form:  # Slack's read methods take form or query arguments
                response = await self._http.post(url, data=dict(body), headers=self._headers)
            else:
                response = await self._http.post(url, json=dict(body), headers=self._headers)
        except httpx.HTTPError as exc:
            raise SlackApiError(f"{method}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == _RATE_LIMITED:
            raise SlackApiError(
                f"{method}: rate limited (retry after {response.headers.get('Retry-After')}s)"
            )
        if response.is_error:
            raise SlackApiError(f"{method}: HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise SlackApiError(f"{method}: the answer is not JSON") from exc
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SlackApiError(f"{method}: {error or 'not ok'}")
        return answer

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[JsonObject],
        *,
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        """Post to ``channel`` (in ``thread_ts``'s thread); return its channel id and ``ts``."""
        body: JsonObject = {"channel": channel, "text": text, "blocks": list(blocks)}
        if thread_ts is not None:
            body = {**body, "thread_ts": thread_ts}
        answer = await self._call("chat.postMessage", body)
        got_channel, ts = answer.get("channel"), answer.get("ts")
        if not isinstance(got_channel, str) or not isinstance(ts, str):
            raise SlackApiError("chat.postMessage: the answer has no channel and ts")
        return got_channel, ts

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[JsonObject]
    ) -> None:
        await self._call(
            "chat.update", {"channel": channel, "ts": ts, "text": text, "blocks": list(blocks)}
        )

    async def post_ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._call("chat.postEphemeral", {"channel": channel, "user": user, "text": text})

    async def open_view(self, trigger_id: str, view: JsonObject) -> None:
        """Open a modal for the user whose action carried ``trigger_id`` (valid 3 s)."""
        await self._call("views.open", {"trigger_id": trigger_id, "view": dict(view)})

    async def user_email(self, user_id: str) -> str | None:
        """The email of a Slack user (needs the ``users:read.email`` scope), if shown."""
        answer = await self._call("users.info", {"user": user_id}, form=True)
        user = answer.get("user")
        profile = user.get("profile") if isinstance(user, dict) else None
        email = profile.get("email") if isinstance(profile, dict) else None
        return email if isinstance(email, str) and email else None
