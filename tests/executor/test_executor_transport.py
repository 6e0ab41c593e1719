"""The ``http`` action over the production clients and a real socket: the lean HTTP/1.1
client (the default), aiohttp directly, aiohttp under httpx, and httpx's own httpcore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

import httpx
import pytest
from outside_fakes import FakeApi, Seen
from platform_kit import free_port

from baton_executor.actions.http import HttpAction
from baton_executor.actions.http1 import Http1Client
from baton_executor.errors import PermanentError, RetryableError
from baton_executor.main import build_client, build_guard, build_session
from baton_executor.settings import ExecutorSettings

from .tasks import step_task


def respond(seen: Seen) -> tuple[int, object]:
    if seen.path == "/busy":
        return 503, {"error": "busy"}
    if seen.path == "/gone":
        return 404, {"error": "no such alert"}
    return 200, {"method": seen.method, "key": seen.headers.get("Idempotency-Key")}


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi(respond) as server:
        yield server


@pytest.fixture(params=["http1", "aiohttp-direct", "aiohttp", "httpcore"])
async def action(request: pytest.FixtureRequest) -> AsyncIterator[HttpAction]:
    transport: Literal["aiohttp", "httpcore"] = (
        "httpcore" if request.param == "httpcore" else "aiohttp"
    )
    settings = ExecutorSettings(allowed_networks=["127.0.0.1/32"], http_transport=transport)
    if request.param == "aiohttp-direct":
        async with build_session(settings) as session:
            yield HttpAction(session, guard=build_guard(settings))
        return
    if request.param == "http1":
        lean = Http1Client(build_session(settings))
        try:
            yield HttpAction(lean, guard=build_guard(settings))
        finally:
            await lean.close()
        return
    async with build_client(settings) as client:
        yield HttpAction(client, guard=build_guard(settings))


async def test_a_request_round_trips(api: FakeApi, action: HttpAction) -> None:
    task = step_task({"url": f"{api.url}/lookup", "method": "POST", "json": {"a": 1}})

    output = await action(task)

    assert isinstance(output, dict)
    assert output["status"] == 200
    assert output["body"] == {"method": "POST", "key": task.attempt_id}
    assert api.requests[0].json() == {"a": 1}


async def test_statuses_and_refused_connections_are_classified(
    api: FakeApi, action: HttpAction
) -> None:
    with pytest.raises(RetryableError) as busy:
        await action(step_task({"url": f"{api.url}/busy"}))
    with pytest.raises(PermanentError) as gone:
        await action(step_task({"url": f"{api.url}/gone"}))
    with pytest.raises(RetryableError) as refused:
        await action(step_task({"url": f"http://127.0.0.1:{free_port()}/"}))

    assert (busy.value.http_status, gone.value.http_status) == (503, 404)
    assert refused.value.error_type in {"ConnectError", "ConnectTimeout"}


async def test_the_production_guard_refuses_what_is_not_allowed(action: HttpAction) -> None:
    with pytest.raises(PermanentError) as raised:
        await action(step_task({"url": "http://169.254.169.254/latest/meta-data/"}))
    assert raised.value.error_type == "PolicyDenied"


def test_the_default_transport_is_aiohttp() -> None:
    assert ExecutorSettings().http_transport == "aiohttp"
    assert isinstance(build_client(ExecutorSettings()), httpx.AsyncClient)
