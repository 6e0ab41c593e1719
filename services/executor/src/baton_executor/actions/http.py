"""The ``http`` action: HTTP requests, made safe to repeat with an idempotency key.

Input (rendered by the scheduler from the step's ``with``): ``url`` (required),
``method`` (GET), ``headers``, ``query``, one body of ``json``, ``form`` (URL-encoded)
or ``body`` (raw text, with ``content_type``), ``timeout`` seconds (30),
``expect_status`` (statuses that count as success; default any 2xx),
``retry_on_status`` (statuses a retry may cure; default 408, 425, 429, 500, 502, 503,
504) and ``paginate`` (follow ``Link: rel=next`` or a cursor, up to ``max_pages``).

Output: ``{"status": 200, "headers": {...}, "body": <JSON if the response is JSON, else
text>}``, plus ``"truncated": true`` when the body was cut at the size limit. Paginated:
``body`` is the last page, ``pages`` the number of pages read, ``items`` the pages' lists
joined (when ``paginate.items`` names them) and ``complete`` whether the last page was
reached within the cap.
"""

from __future__ import annotations

import json
import math
from typing import Final
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson
import yarl
from pydantic import JsonValue, ValidationError

from baton_common.commands import ErrorKind
from baton_common.records import StepTask
from baton_executor.actions.http1 import Http1Client
from baton_executor.actions.http_input import HttpInput, Paginate, as_text, describe, parse_input
from baton_executor.actions.outbound import (
    DEFAULT_RETRYABLE,
    Reply,
    safe_url,
    send,
    send_direct,
    status_error,
)
from baton_executor.errors import PermanentError
from baton_executor.guard import OutboundGuard

__all__ = ["HttpAction", "HttpInput", "Paginate", "classify_status", "describe"]

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# Response headers that can carry credentials stay out of outputs, which live in the log.
_DROPPED_HEADERS: Final = frozenset({"set-cookie", "set-cookie2"})


def classify_status(
    status: int,
    expect_status: list[int] | None = None,
    retry_on_status: list[int] | None = None,
) -> ErrorKind | None:
    """None if ``status`` is a success, else whether a retry may help.

    Success is any 2xx, or exactly the statuses in ``expect_status`` when given.
    ``retry_on_status`` (default 408, 425, 429, 500, 502, 503, 504) may pass on retry;
    other statuses will not.
    """
    if status in expect_status if expect_status is not None else 200 <= status < 300:
        return None
    retryable = DEFAULT_RETRYABLE if retry_on_status is None else retry_on_status
    return "retryable" if status in retryable else "permanent"


class HttpAction:
    """Makes the request with an injected client; redirects are never followed.

    Args:
        client: the shared HTTP client, built and closed in ``main``: an aiohttp session
            (ADR 0320), the lean HTTP/1.1 client over one (the production path, ADR 0330)
            or an ``httpx.AsyncClient`` built with
            ``follow_redirects=False`` (tests' ``MockTransport``, the ``httpcore`` setting).
        guard: SSRF policy, per-host limits and breaker (None only in unit tests).
        max_response_bytes: response bodies beyond this are truncated (outputs must fit
            in a Kafka record).
        max_timeout_seconds: the largest ``timeout`` a step may ask for.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | aiohttp.ClientSession | Http1Client,
        *,
        guard: OutboundGuard | None = None,
        max_response_bytes: int = 256 * 1024,
        max_timeout_seconds: float = 120.0,
    ) -> None:
        self._client = client
        self._guard = guard
        self._max_response_bytes = max_response_bytes
        self._max_timeout = max_timeout_seconds

    async def __call__(self, task: StepTask) -> JsonValue:
        spec = self._parse(task)
        url = yarl.URL(spec.url)
        if spec.query:
            # Merged into the URL's own query, replacing parameters of the same name.
            url = url.update_query(
                {
                    k: [as_text(i) for i in v] if isinstance(v, list) else as_text(v)
                    for k, v in spec.query.items()
                }
            )
        reply = await self._request(spec, url, task.attempt_id)
        if spec.paginate is None:
            return _output(reply)
        return await self._paginate(spec, spec.paginate, url, reply, task.attempt_id)

    async def _request(self, spec: HttpInput, url: yarl.URL, attempt_id: str) -> Reply:
        headers = {k: as_text(v) for k, v in spec.headers.items()}
        for name in [k for k in headers if k.lower() == IDEMPOTENCY_HEADER.lower()]:
            del headers[name]
        headers[IDEMPOTENCY_HEADER] = attempt_id
        body = _body(spec, headers)
        if isinstance(self._client, aiohttp.ClientSession | Http1Client):
            reply = await send_direct(
                self._client,
                self._guard,
                spec.method,
                url,
                headers=headers,
                body=body,
                timeout_seconds=spec.timeout,
                max_bytes=self._max_response_bytes,
                retryable=spec.retryable(),
            )
        else:
            request = self._client.build_request(
                spec.method,
                httpx.URL(str(url)),
                headers=headers,
                content=body,
                timeout=spec.timeout,
            )
            reply = await send(
                self._client,
                self._guard,
                request,
                timeout_seconds=spec.timeout,
                max_bytes=self._max_response_bytes,
                retryable=spec.retryable(),
            )
        if classify_status(reply.status, spec.expect_status, spec.retry_on_status) is not None:
            raise status_error(reply, f"{spec.method} {safe_url(url)}", retryable=False)
        return reply

    async def _paginate(
        self, spec: HttpInput, how: Paginate, url: yarl.URL, first: Reply, attempt_id: str
    ) -> JsonValue:
        replies = [first]
        complete = True
        while True:
            following = _next_url(how, url, replies[-1])
            if following is None:
                break
            if len(replies) >= how.max_pages:
                complete = False
                break
            url = following
            replies.append(await self._request(spec, url, attempt_id))
        output = _output(replies[-1])
        assert isinstance(output, dict)
        output["pages"] = len(replies)
        output["complete"] = complete
        if how.items is not None:
            items: list[JsonValue] = []
            for reply in replies:
                found = _dig(reply.body(), how.items)
                if isinstance(found, list):
                    items.extend(found)
            output["items"] = items
        return output

    def _parse(self, task: StepTask) -> HttpInput:
        try:
            spec = parse_input(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {describe(exc)}", error_type="InvalidInput"
            ) from None
        if spec.timeout > self._max_timeout:
            raise PermanentError(
                f"invalid input: timeout {spec.timeout}s exceeds the executor's limit of "
                f"{self._max_timeout}s",
                error_type="InvalidInput",
            )
        return spec


def _body(spec: HttpInput, headers: dict[str, str]) -> bytes | None:
    """The request body encoded as httpx encodes ``json=``/``data=``/``content=``, with
    its Content-Type added to ``headers`` (a Content-Type the step gave wins)."""
    if spec.has_json:
        _default_content_type(headers, "application/json")
        return _json_bytes(spec.json_body)
    if spec.form is not None:
        pairs = [
            (k, as_text(item))
            for k, v in spec.form.items()
            for item in (v if isinstance(v, list) else [v])
        ]
        _default_content_type(headers, "application/x-www-form-urlencoded")
        return urlencode(pairs, doseq=True).encode()
    if spec.content_type is not None:
        headers["Content-Type"] = spec.content_type
    return spec.body.encode() if spec.body is not None else None


_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_bytes(value: JsonValue) -> bytes:
    """Compact UTF-8 JSON, as httpx's ``json=`` writes it. orjson first (a tenth of the
    cost) when it says the same thing: it writes NaN and infinities as null (httpx
    refuses them) and refuses integers beyond 64 bits (httpx writes them)."""
    try:
        body = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _JSON.encode(value).encode()
    if b"null" in body and _non_finite(value):
        return _JSON.encode(value).encode()  # raises ValueError, as httpx's json= does
    return body


def _non_finite(value: JsonValue) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def _default_content_type(headers: dict[str, str], value: str) -> None:
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = value


def _output(reply: Reply) -> dict[str, JsonValue]:
    output: dict[str, JsonValue] = {
        "status": reply.status,
        "headers": {k: v for k, v in reply.headers.items() if k.lower() not in _DROPPED_HEADERS},
        "body": reply.body(),
    }
    if reply.truncated:
        output["truncated"] = True
    return output


def _next_url(how: Paginate, current: yarl.URL, reply: Reply) -> yarl.URL | None:
    if how.next == "link":
        link = reply.headers.get("link")
        if not link:
            return None
        # httpx's parser of Link headers, through its public API
        target = httpx.Response(reply.status, headers={"link": link}).links.get("next", {})
        return current.join(yarl.URL(target["url"])) if target.get("url") else None
    assert how.cursor is not None
    cursor = _dig(reply.body(), how.cursor.path)
    if cursor is None or cursor == "" or isinstance(cursor, dict | list | bool):
        return None
    return current.update_query({how.cursor.param: str(cursor)})


def _dig(value: JsonValue, path: str) -> JsonValue:
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
