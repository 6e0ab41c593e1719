"""What the ``http`` action puts on the wire and reads back, over each production client.

A real aiohttp web server on a local socket answers; the action runs over the lean
HTTP/1.1 client (the default, ADR 0330), aiohttp directly (ADR 0320), aiohttp under httpx,
and httpx's own httpcore, and must behave the same way on all four.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest
from aiohttp import web
from platform_kit import free_port

from baton_executor.actions.http import HttpAction
from baton_executor.actions.http1 import Http1Client
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.main import build_client, build_guard, build_session
from baton_executor.settings import ExecutorSettings

from .tasks import step_task

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Upstream:
    """A local HTTP server whose answer a test sets; it keeps what it was sent."""

    url: str
    seen: list[tuple[web.Request, bytes]] = field(default_factory=list)
    answer: Handler | None = None


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    port = free_port()
    server = Upstream(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.StreamResponse:
        server.seen.append((request, await request.read()))
        assert server.answer is not None
        return await server.answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture(params=["http1", "aiohttp-direct", "aiohttp", "httpcore"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def action(kind: str) -> AsyncIterator[HttpAction]:
    transport: Literal["aiohttp", "httpcore"] = "httpcore" if kind == "httpcore" else "aiohttp"
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"], http_transport=transport)
    guard = build_guard(settings)
    if kind == "aiohttp-direct":
        async with build_session(settings) as session:
            yield HttpAction(session, guard=guard, max_response_bytes=1024)
        return
    if kind == "http1":
        lean = Http1Client(build_session(settings))
        try:
            yield HttpAction(lean, guard=guard, max_response_bytes=1024)
        finally:
            await lean.close()
        return
    async with build_client(settings) as client:
        yield HttpAction(client, guard=guard, max_response_bytes=1024)


def reply(status: int = 200, text: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, headers=headers)

    return answer


async def test_bodies_are_encoded_and_labelled(
    upstream: Upstream, action: HttpAction, kind: str
) -> None:
    upstream.answer = reply(text="ok")
    url = f"{upstream.url}/in"

    await action(step_task({"url": url, "method": "POST", "json": {"a": "é", "n": [1, 2]}}))
    await action(step_task({"url": url, "method": "POST", "form": {"a": "x y", "b": [1, True]}}))
    await action(step_task({"url": url, "method": "PUT", "body": "raw text"}))
    await action(step_task({"url": url, "method": "PUT", "body": "<a/>", "content_type": "a/b"}))

    sent = [(r.headers.get("Content-Type"), body) for r, body in upstream.seen]
    assert sent == [
        ("application/json", '{"a":"é","n":[1,2]}'.encode()),
        ("application/x-www-form-urlencoded", b"a=x+y&b=1&b=true"),
        # httpx-aiohttp labels an unlabelled body; httpx and the direct path do not
        ("application/octet-stream" if kind == "aiohttp" else None, b"raw text"),
        ("a/b", b"<a/>"),
    ]


async def test_query_headers_and_idempotency_key_reach_the_server(
    upstream: Upstream, action: HttpAction
) -> None:
    upstream.answer = reply(text="ok")
    task = step_task(
        {
            "url": f"{upstream.url}/q?fixed=1&tag=z",
            "query": {"tag": ["a", "b"], "n": 2},
            "headers": {"X-Team": "secops", "idempotency-key": "forged"},
        }
    )

    await action(task)

    [(request, _)] = upstream.seen
    assert request.path == "/q"
    assert sorted(request.query.items()) == [("fixed", "1"), ("n", "2"), ("tag", "a"), ("tag", "b")]
    assert request.headers["X-Team"] == "secops"
    assert request.headers.getall("Idempotency-Key") == [task.attempt_id]


async def test_redirects_are_not_followed(upstream: Upstream, action: HttpAction) -> None:
    upstream.answer = reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    with pytest.raises(PermanentError) as raised:
        await action(step_task({"url": f"{upstream.url}/moved"}))

    assert raised.value.http_status == 302
    assert len(upstream.seen) == 1


async def test_a_step_past_its_timeout_is_a_retryable_timeout(
    upstream: Upstream, action: HttpAction
) -> None:
    async def stalled(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.Response(text="late")

    upstream.answer = stalled
    with pytest.raises(RetryableError) as raised:
        await action(step_task({"url": f"{upstream.url}/slow", "timeout": 0.2}))

    assert raised.value.error_type == "Timeout"
    upstream.answer = reply(text="on time")  # the client is still usable afterwards
    output = await action(step_task({"url": f"{upstream.url}/fast"}))
    assert isinstance(output, dict)
    assert output["body"] == "on time"


async def test_retry_after_travels_with_a_retryable_status(
    upstream: Upstream, action: HttpAction
) -> None:
    upstream.answer = reply(429, "slow down", {"Retry-After": "7"})

    with pytest.raises(RetryableError) as raised:
        await action(step_task({"url": f"{upstream.url}/busy"}))

    assert (raised.value.http_status, raised.value.retry_after_seconds) == (429, 7.0)


async def test_the_output_carries_headers_and_a_body_cut_at_the_limit(
    upstream: Upstream, action: HttpAction
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.Response(text="é" * 1500, charset="utf-8")
        response.headers.add("X-Seen", "a")
        response.headers.add("X-Seen", "b")
        response.headers.add("Set-Cookie", "session=secret")
        return response

    upstream.answer = big

    output = await action(step_task({"url": f"{upstream.url}/big"}))

    assert isinstance(output, dict)
    assert isinstance(output["headers"], dict)
    assert output["truncated"] is True
    assert output["body"] == "é" * 512
    assert output["headers"]["x-seen"] == "a, b"
    assert "set-cookie" not in output["headers"]


async def test_json_and_charsets_are_decoded(upstream: Upstream, action: HttpAction) -> None:
    upstream.answer = reply(text='{"ok": true}', headers={"Content-Type": "application/json"})
    json_output = await action(step_task({"url": f"{upstream.url}/j"}))

    async def latin(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body="café".encode("latin-1"), content_type="text/plain", charset="latin-1"
        )

    upstream.answer = latin
    text_output = await action(step_task({"url": f"{upstream.url}/t"}))

    assert isinstance(json_output, dict)
    assert isinstance(text_output, dict)
    assert json_output["body"] == {"ok": True}
    assert text_output["body"] == "café"


async def test_link_pagination_follows_next_links(upstream: Upstream, action: HttpAction) -> None:
    async def pages(request: web.Request) -> web.StreamResponse:
        page = int(request.query.get("page", "1"))
        headers = {"Link": f'</items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return web.json_response({"items": [page]}, headers=headers)

    upstream.answer = pages

    output = await action(
        step_task({"url": f"{upstream.url}/items", "paginate": {"next": "link", "items": "items"}})
    )

    assert isinstance(output, dict)
    assert (output["pages"], output["complete"], output["items"]) == (3, True, [1, 2, 3])


async def test_the_direct_session_keeps_no_cookies_between_steps(upstream: Upstream) -> None:
    upstream.answer = reply(text="ok", headers={"Set-Cookie": "session=from-run-a"})
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"])
    async with build_session(settings) as session:
        action = HttpAction(session, guard=build_guard(settings))
        await action(step_task({"url": f"{upstream.url}/a"}))
        await action(step_task({"url": f"{upstream.url}/b"}))

    assert [r.headers.get("Cookie") for r, _ in upstream.seen] == [None, None]


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_the_shared_client_keeps_no_cookies_between_steps(
    upstream: Upstream, transport: Literal["aiohttp", "httpcore"]
) -> None:
    """AI providers and Slack share this client across every run and story."""
    upstream.answer = reply(text="ok", headers={"Set-Cookie": "session=from-run-a; Path=/"})
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"], http_transport=transport)
    async with build_client(settings) as client:
        first = await client.get(f"{upstream.url}/a")
        await client.get(f"{upstream.url}/b")

        assert first.headers["set-cookie"] == "session=from-run-a; Path=/"  # the server set one
        assert len(client.cookies) == 0
    assert [r.headers.get("Cookie") for r, _ in upstream.seen] == [None, None]
