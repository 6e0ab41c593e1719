"""The ``notify.slack`` action: ``chat.postMessage`` with Block Kit.

Input: ``channel`` (id or name), ``text`` (the notification text, also the fallback of
blocks), optional ``blocks`` (Block Kit, passed as is), ``fields`` (label → value, shown
as a section's fields when no ``blocks`` are given) and ``thread_ts``.

Output: ``{"ok": true, "channel": "C…", "ts": "…"}``. Slack answers HTTP 200 with
``ok: false`` and an error code for most failures; codes that a retry may cure
(``ratelimited``, ``internal_error``, ``service_unavailable``, …) are retryable, the rest
(``invalid_auth``, ``channel_not_found``, ``invalid_blocks``, …) permanent.
"""

from __future__ import annotations

from typing import Annotated, Final

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from baton_common.records import StepTask
from baton_executor.actions.http import describe
from baton_executor.actions.outbound import safe_url, send, status_error
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.guard import OutboundGuard
from baton_executor.secrets import Redactor, SecretStore

__all__ = ["SlackAction", "SlackInput", "default_blocks"]

RETRYABLE_CODES: Final = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_MAX_BYTES: Final = 64 * 1024


class SlackInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1, max_length=40_000)]
    blocks: list[JsonValue] | None = None
    fields: dict[str, str | int | float | bool] | None = None
    thread_ts: str | None = None

    @model_validator(mode="after")
    def _fields_or_blocks(self) -> SlackInput:
        if self.blocks is not None and self.fields is not None:
            raise ValueError("give `blocks` or `fields`, not both")
        return self


def default_blocks(
    text: str, fields: dict[str, str | int | float | bool] | None
) -> list[JsonValue]:
    """A section with the text, and the fields two by two, as Block Kit."""
    blocks: list[JsonValue] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                    for name, value in list(fields.items())[:10]  # Slack's limit per section
                ],
            }
        )
    return blocks


class SlackAction:
    """Posts with a bot token read from the secret store."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str,
        token_secret: str,
        secrets: SecretStore,
        guard: OutboundGuard | None = None,
        timeout_seconds: float = 15.0,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._token_secret = token_secret
        self._secrets = secrets
        self._guard = guard
        self._timeout = timeout_seconds

    async def __call__(self, task: StepTask) -> JsonValue:
        try:
            spec = SlackInput.model_validate(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {describe(exc)}", error_type="InvalidInput"
            ) from None
        token = self._secrets.get(self._token_secret)
        redactor = Redactor([token])
        body: dict[str, JsonValue] = {
            "channel": spec.channel,
            "text": spec.text,
            "blocks": spec.blocks
            if spec.blocks is not None
            else default_blocks(spec.text, spec.fields),
            "unfurl_links": False,
        }
        if spec.thread_ts is not None:
            body["thread_ts"] = spec.thread_ts
        url = httpx.URL(f"{self._api_url}/chat.postMessage")
        request = self._client.build_request(
            "POST",
            url,
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json; charset=utf-8",
            },
            timeout=self._timeout,
        )
        what = f"POST {safe_url(url)}"
        try:
            reply = await send(
                self._client,
                self._guard,
                request,
                timeout_seconds=self._timeout,
                max_bytes=_MAX_BYTES,
            )
        except (RetryableError, PermanentError) as exc:
            exc.message = redactor.text(exc.message)
            raise
        if not 200 <= reply.status < 300:
            raise status_error(reply, what, retryable=False)
        answer = reply.body()
        if not isinstance(answer, dict):
            raise RetryableError(
                f"{what}: the answer is not JSON", error_type="SlackInvalidResponse"
            )
        if answer.get("ok") is not True:
            code = str(answer.get("error") or "unknown_error")
            cls = RetryableError if code in RETRYABLE_CODES else PermanentError
            raise cls(f"Slack chat.postMessage failed: {code}", error_type=f"slack_{code}")
        return {"ok": True, "channel": answer.get("channel"), "ts": answer.get("ts")}
