"""The ``http`` action: one HTTP request, made safe to repeat with an idempotency key.

Input (rendered by the scheduler from the step's ``with``): ``url`` (required),
``method`` (GET), ``headers``, ``query``, ``json`` or ``body``, ``timeout`` seconds (30)
and ``expect_status`` (a list of statuses that count as success; default any 2xx).

Output: ``{"status": 200, "headers": {...}, "body": <JSON if the response is JSON, else
text>}``, plus ``"truncated": true`` when the body was cut at the size limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Final, NoReturn

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from baton_common.commands import ErrorKind
from baton_common.records import StepTask
from baton_executor.errors import ActionError, PermanentError, RetryableError

__all__ = ["HttpAction", "HttpInput", "classify_status"]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})
# Response headers that can carry credentials stay out of outputs, which live in the log.
_DROPPED_HEADERS: Final = frozenset({"set-cookie", "set-cookie2"})
_ERROR_BODY_CHARS: Final = 300

Scalar = str | int | float | bool


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class HttpInput(BaseModel):
    """The validated input of an ``http`` step."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    url: str
    method: str = "GET"
    headers: dict[str, Scalar] = Field(default_factory=dict)
    query: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    json_body: JsonValue = Field(default=None, alias="json")
    body: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        method = value.upper()
        if method not in METHODS:
            raise ValueError(f"must be one of {', '.join(sorted(METHODS))}")
        return method

    @model_validator(mode="after")
    def _one_body(self) -> HttpInput:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError("give either `json` or `body`, not both")
        return self

    @property
    def has_json(self) -> bool:
        return "json_body" in self.model_fields_set


def classify_status(status: int, expect_status: Sequence[int] | None = None) -> ErrorKind | None:
    """None if ``status`` is a success, else whether a retry may help.

    Success is any 2xx, or exactly the statuses in ``expect_status`` when given.
    408, 425, 429 and 5xx may pass on retry; other statuses will not.
    """
    if status in expect_status if expect_status is not None else 200 <= status < 300:
        return None
    if status in _RETRYABLE_STATUSES or status >= 500:
        return "retryable"
    return "permanent"


class HttpAction:
    """Makes the request with an injected client (``follow_redirects=False``).

    Args:
        client: the shared HTTP client, built and closed in ``main``.
        max_response_bytes: response bodies beyond this are truncated (outputs must fit
            in a Kafka record).
        max_timeout_seconds: the largest ``timeout`` a step may ask for.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_response_bytes: int = 256 * 1024,
        max_timeout_seconds: float = 120.0,
    ) -> None:
        self._client = client
        self._max_response_bytes = max_response_bytes
        self._max_timeout = max_timeout_seconds

    async def __call__(self, task: StepTask) -> JsonValue:
        spec = self._parse(task)
        headers = {k: _text(v) for k, v in spec.headers.items()}
        for name in [k for k in headers if k.lower() == IDEMPOTENCY_HEADER.lower()]:
            del headers[name]
        headers[IDEMPOTENCY_HEADER] = task.attempt_id
        query = {
            k: [_text(i) for i in v] if isinstance(v, list) else _text(v)
            for k, v in spec.query.items()
        }
        where = _safe_url(spec.url)
        try:
            async with asyncio.timeout(spec.timeout):
                url = httpx.URL(spec.url)
                # build_request(params=…) would replace the URL's own query: merge instead.
                request = self._client.build_request(
                    spec.method,
                    url.copy_merge_params(query) if query else url,
                    headers=headers,
                    json=spec.json_body if spec.has_json else None,
                    content=spec.body,
                    timeout=spec.timeout,
                )
                response = await self._client.send(request, stream=True)
                try:
                    raw, truncated = await _read_limited(response, self._max_response_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise RetryableError(
                f"{spec.method} {where}: no complete response within {spec.timeout}s",
                error_type="Timeout",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            _raise_transport_error(exc, f"{spec.method} {where}")

        body = _decode_body(response, raw, truncated)
        kind = classify_status(response.status_code, spec.expect_status)
        if kind is not None:
            snippet = body if isinstance(body, str) else json.dumps(body)
            message = f"{spec.method} {where} returned HTTP {response.status_code}"
            if snippet:
                message += f": {snippet[:_ERROR_BODY_CHARS]}"
            error: ActionError = (
                RetryableError(message, error_type=f"http_{response.status_code}")
                if kind == "retryable"
                else PermanentError(message, error_type=f"http_{response.status_code}")
            )
            raise error
        output: dict[str, JsonValue] = {
            "status": response.status_code,
            "headers": {
                k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS
            },
            "body": body,
        }
        if truncated:
            output["truncated"] = True
        return output

    def _parse(self, task: StepTask) -> HttpInput:
        try:
            spec = HttpInput.model_validate(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {_describe(exc)}", error_type="InvalidInput"
            ) from None
        if spec.timeout > self._max_timeout:
            raise PermanentError(
                f"invalid input: timeout {spec.timeout}s exceeds the executor's limit of "
                f"{self._max_timeout}s",
                error_type="InvalidInput",
            )
        return spec


def _raise_transport_error(exc: httpx.HTTPError | httpx.InvalidURL, what: str) -> NoReturn:
    message = f"{what}: {type(exc).__name__}"
    if str(exc):
        message += f": {exc}"
    # Requests that can never be sent: a retry would fail the same way.
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        raise PermanentError(message, error_type=type(exc).__name__) from exc
    # Timeouts, refused or reset connections, protocol errors from the server.
    raise RetryableError(message, error_type=type(exc).__name__) from exc


async def _read_limited(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _decode_body(response: httpx.Response, raw: bytes, truncated: bool) -> JsonValue:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not truncated and (media_type == "application/json" or media_type.endswith("+json")):
        try:
            parsed: JsonValue = json.loads(raw, parse_constant=_no_constants)
            return parsed
        except (ValueError, RecursionError):
            pass  # a server that labels text as JSON: keep the text
    return raw.decode(response.charset_encoding or "utf-8", errors="replace")


def _safe_url(url: str) -> str:
    """The URL without credentials or query, which may carry tokens, for messages."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
