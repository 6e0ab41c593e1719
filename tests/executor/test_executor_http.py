"""The ``http`` action against ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import JsonValue

from baton_executor.actions.http import HttpAction, classify_status
from baton_executor.actions.outbound import retry_after
from baton_executor.errors import PermanentError, RetryableError

from .tasks import step_task

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Server:
    """Answers with a handler and keeps every request it saw."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = self.ok

    async def ok(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.handler(request)


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
async def action(server: Server) -> AsyncIterator[HttpAction]:
    transport = httpx.MockTransport(server)
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        yield HttpAction(client, max_response_bytes=1024, max_timeout_seconds=60)


def answer(response: httpx.Response) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return response

    return handler


def fail_with(exc: Exception) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def test_every_request_carries_the_attempt_id_as_idempotency_key(
    server: Server, action: HttpAction
) -> None:
    task = step_task({"url": "https://x.example/a", "headers": {"idempotency-key": "forged"}})

    await action(task)

    [request] = server.requests
    assert request.headers.get_list("idempotency-key") == [task.attempt_id]


async def test_the_request_is_built_from_the_input(server: Server, action: HttpAction) -> None:
    task = step_task(
        {
            "url": "https://x.example/alerts?fixed=1",
            "method": "post",
            "headers": {"X-Team": "secops", "X-Count": 3, "X-Flag": True},
            "query": {"q": "high", "tag": ["a", "b"]},
            "json": {"alert": {"id": 7}},
        }
    )

    await action(task)

    [request] = server.requests
    assert request.method == "POST"
    assert request.url.path == "/alerts"
    assert request.url.params.get_list("tag") == ["a", "b"]
    assert (request.url.params["q"], request.url.params["fixed"]) == ("high", "1")
    assert request.headers["x-team"] == "secops"
    assert (request.headers["x-count"], request.headers["x-flag"]) == ("3", "true")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"alert": {"id": 7}}


async def test_a_text_body_is_sent_as_is(server: Server, action: HttpAction) -> None:
    await action(step_task({"url": "https://x.example/", "method": "PUT", "body": "hello"}))

    assert server.requests[0].content == b"hello"


async def test_a_json_response_is_parsed(server: Server, action: HttpAction) -> None:
    server.handler = answer(
        httpx.Response(201, json={"id": 1}, headers={"X-Request-Id": "r1", "Set-Cookie": "s=1"})
    )

    output = await action(step_task())

    assert isinstance(output, dict)
    assert output["status"] == 201
    assert output["body"] == {"id": 1}
    headers = output["headers"]
    assert isinstance(headers, dict)
    assert headers["x-request-id"] == "r1"
    assert "set-cookie" not in headers
    assert "truncated" not in output


JSON_TYPE = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (httpx.Response(200, text="plain words"), "plain words"),
        (httpx.Response(200, content=b"{broken", headers=JSON_TYPE), "{broken"),
        (httpx.Response(200, content=b'{"a": NaN}', headers=JSON_TYPE), '{"a": NaN}'),
        (
            httpx.Response(200, json=[1, 2], headers={"content-type": "application/problem+json"}),
            [1, 2],
        ),
        (httpx.Response(204), ""),
    ],
)
async def test_other_responses_are_text(
    server: Server, action: HttpAction, response: httpx.Response, body: JsonValue
) -> None:
    server.handler = answer(response)

    output = await action(step_task())

    assert isinstance(output, dict)
    assert output["body"] == body


async def test_a_large_body_is_truncated_and_flagged(server: Server, action: HttpAction) -> None:
    server.handler = answer(httpx.Response(200, json={"blob": "x" * 5000}))

    output = await action(step_task())

    assert isinstance(output, dict)
    assert output["truncated"] is True
    assert isinstance(output["body"], str)
    assert len(output["body"]) == 1024


@pytest.mark.parametrize(
    ("status", "expect", "kind"),
    [
        (200, None, None),
        (204, None, None),
        (299, None, None),
        (302, None, "permanent"),
        (400, None, "permanent"),
        (404, None, "permanent"),
        (408, None, "retryable"),
        (409, None, "permanent"),
        (425, None, "retryable"),
        (429, None, "retryable"),
        (500, None, "retryable"),
        (503, None, "retryable"),
        (404, [200, 404], None),
        (200, [201], "permanent"),
        (503, [201], "retryable"),
    ],
)
def test_status_classification(status: int, expect: list[int] | None, kind: str | None) -> None:
    assert classify_status(status, expect) == kind


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_throttling_and_server_errors_are_retryable(
    server: Server, action: HttpAction, status: int
) -> None:
    server.handler = answer(httpx.Response(status, text="busy"))

    with pytest.raises(RetryableError) as raised:
        await action(step_task())

    assert raised.value.error_type == f"http_{status}"
    assert f"HTTP {status}" in raised.value.message


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 422])
async def test_other_client_errors_are_permanent(
    server: Server, action: HttpAction, status: int
) -> None:
    server.handler = answer(httpx.Response(status, json={"error": "no such alert"}))

    with pytest.raises(PermanentError) as raised:
        await action(step_task())

    assert raised.value.error_type == f"http_{status}"
    assert "no such alert" in raised.value.message


async def test_expected_statuses_count_as_success(server: Server, action: HttpAction) -> None:
    server.handler = answer(httpx.Response(404, json={"found": False}))

    output = await action(step_task({"url": "https://x.example/", "expect_status": [200, 404]}))

    assert isinstance(output, dict)
    assert output["status"] == 404


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (httpx.ConnectError("connection refused"), "ConnectError"),
        (httpx.ConnectTimeout("timed out"), "ConnectTimeout"),
        (httpx.ReadTimeout("timed out"), "ReadTimeout"),
        (httpx.RemoteProtocolError("server hung up"), "RemoteProtocolError"),
    ],
)
async def test_connection_errors_and_timeouts_are_retryable(
    server: Server, action: HttpAction, exc: Exception, error_type: str
) -> None:
    server.handler = fail_with(exc)

    with pytest.raises(RetryableError) as raised:
        await action(step_task())

    assert raised.value.error_type == error_type


async def test_a_response_slower_than_the_timeout_is_retryable(
    server: Server, action: HttpAction
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    server.handler = slow

    with pytest.raises(RetryableError) as raised:
        await action(step_task({"url": "https://x.example/", "timeout": 0.05}))

    assert raised.value.error_type == "Timeout"
    assert "0.05s" in raised.value.message


async def test_error_messages_leave_out_query_strings_and_credentials(
    server: Server, action: HttpAction
) -> None:
    server.handler = answer(httpx.Response(500))

    with pytest.raises(RetryableError) as raised:
        await action(step_task({"url": "https://user:pw@x.example/check?token=hunter2"}))

    assert "hunter2" not in raised.value.message
    assert "pw" not in raised.value.message
    assert "x.example/check" in raised.value.message


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ({}, "url: Field required"),
        ({"url": "x.example/path"}, "absolute http"),
        ({"url": "ftp://x.example/"}, "absolute http"),
        ({"url": "https://x.example/", "method": "BREW"}, "method: must be one of"),
        ({"url": "https://x.example/", "json": {}, "body": "x"}, "give one body, not `json`"),
        ({"url": "https://x.example/", "timeout": 0}, "timeout"),
        ({"url": "https://x.example/", "timeout": 600}, "exceeds the executor's limit"),
        ({"url": "https://x.example/", "header": {}}, "header: Extra inputs"),
        ({"url": "https://x.example/", "expect_status": [700]}, "expect_status"),
    ],
)
async def test_invalid_input_is_permanent(
    server: Server, action: HttpAction, input: dict[str, JsonValue], fragment: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        await action(step_task(input))

    assert raised.value.error_type == "InvalidInput"
    assert raised.value.message.startswith("invalid input: ")
    assert fragment in raised.value.message
    assert server.requests == []


async def test_redirects_are_not_followed(server: Server, action: HttpAction) -> None:
    server.handler = answer(httpx.Response(302, headers={"location": "https://elsewhere/"}))

    output = await action(step_task({"url": "https://x.example/", "expect_status": [302]}))

    assert isinstance(output, dict)
    assert output["status"] == 302
    assert len(server.requests) == 1


async def test_429_carries_retry_after_seconds(server: Server, action: HttpAction) -> None:
    server.handler = answer(httpx.Response(429, headers={"Retry-After": "17"}, text="slow down"))

    with pytest.raises(RetryableError) as raised:
        await action(step_task())

    assert (raised.value.http_status, raised.value.retry_after_seconds) == (429, 17.0)


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    response = httpx.Response(503, headers={"Retry-After": "Wed, 01 May 2024 12:01:30 GMT"})

    assert retry_after(response, now) == 90.0
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"}), now) is None


async def test_retry_on_status_replaces_the_retryable_set(
    server: Server, action: HttpAction
) -> None:
    server.handler = answer(httpx.Response(409, text="locked"))
    with pytest.raises(RetryableError):
        await action(step_task({"url": "https://x.example/", "retry_on_status": [409]}))

    server.handler = answer(httpx.Response(503, text="down"))
    with pytest.raises(PermanentError) as raised:
        await action(step_task({"url": "https://x.example/", "retry_on_status": [409]}))
    assert raised.value.http_status == 503


async def test_a_form_body_is_url_encoded(server: Server, action: HttpAction) -> None:
    await action(
        step_task(
            {"url": "https://x.example/", "method": "POST", "form": {"a": 1, "b": ["x", "y"]}}
        )
    )

    [request] = server.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == b"a=1&b=x&b=y"


async def test_json_bodies_are_written_as_httpx_writes_them(
    server: Server, action: HttpAction
) -> None:
    body: JsonValue = {"big": 2**70, "f": 1.5, "text": "é", "list": [None, True]}

    await action(step_task({"url": "https://x.example/", "method": "POST", "json": body}))
    with pytest.raises(ValueError, match="JSON compliant"):
        await action(
            step_task({"url": "https://x.example/", "method": "POST", "json": {"x": float("nan")}})
        )

    [request] = server.requests
    assert request.headers["content-type"] == "application/json"
    assert request.content == httpx.Request("POST", "https://x.example/", json=body).content


async def test_a_raw_body_takes_its_content_type(server: Server, action: HttpAction) -> None:
    await action(
        step_task(
            {
                "url": "https://x.example/",
                "method": "POST",
                "body": "<a/>",
                "content_type": "text/xml",
            }
        )
    )

    assert server.requests[0].headers["content-type"] == "text/xml"
    assert server.requests[0].content == b"<a/>"


async def test_link_pagination_follows_next_up_to_the_cap(
    server: Server, action: HttpAction
) -> None:
    async def pages(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        link = f'</items?page={page + 1}>; rel="next"'
        return httpx.Response(
            200, json={"data": [page * 10, page * 10 + 1]}, headers={"Link": link}
        )

    server.handler = pages
    output = await action(
        step_task(
            {
                "url": "https://x.example/items",
                "paginate": {"next": "link", "items": "data", "max_pages": 3},
            }
        )
    )

    assert isinstance(output, dict)
    assert output["items"] == [10, 11, 20, 21, 30, 31]
    assert (output["pages"], output["complete"]) == (3, False)
    assert [r.url.params.get("page") for r in server.requests] == [None, "2", "3"]
    assert {r.headers["idempotency-key"] for r in server.requests} == {step_task().attempt_id}


async def test_cursor_pagination_stops_at_the_last_page(server: Server, action: HttpAction) -> None:
    async def pages(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("after")
        following = {None: "c1", "c1": "c2", "c2": None}[cursor]
        return httpx.Response(200, json={"hits": [cursor or "start"], "meta": {"next": following}})

    server.handler = pages
    output = await action(
        step_task(
            {
                "url": "https://x.example/search?q=x",
                "paginate": {"cursor": {"path": "meta.next", "param": "after"}, "items": "hits"},
            }
        )
    )

    assert isinstance(output, dict)
    assert output["items"] == ["start", "c1", "c2"]
    assert (output["pages"], output["complete"]) == (3, True)
    assert server.requests[-1].url.params["q"] == "x"


async def test_a_failing_page_fails_the_attempt(server: Server, action: HttpAction) -> None:
    async def pages(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page"):
            return httpx.Response(502)
        return httpx.Response(200, json=[], headers={"Link": '</?page=2>; rel="next"'})

    server.handler = pages
    with pytest.raises(RetryableError):
        await action(step_task({"url": "https://x.example/", "paginate": {"next": "link"}}))
