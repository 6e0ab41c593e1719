"""The web inbox's guards, in-process (the Chromium test drives the happy paths)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from baton_approvals.inbox import COOKIE, csrf_token
from baton_approvals.main import create_app
from baton_approvals.settings import ApprovalsSettings

from .fakes import FakePublisher, opened, project_gates

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(
    settings: ApprovalsSettings, publisher: FakePublisher
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        hostile = opened("g1", run_id="r1").model_copy(
            update={
                "data": {**opened("g1", run_id="r1").data, "message": "<script>alert(1)</script>"}
            }
        )
        await project_gates(settings, [hostile])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://approvals") as c:
            yield c


async def sign_in(client: httpx.AsyncClient, token: str = "t-alice") -> httpx.Response:
    return await client.post(
        "/inbox/login",
        content=f"token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def test_sign_in_sets_a_strict_http_only_cookie(client: httpx.AsyncClient) -> None:
    assert (await client.get("/inbox")).headers["location"] == "/inbox/login"
    wrong = await sign_in(client, "t-mallory")
    assert wrong.status_code == 401
    assert "Not signed in: unknown token" in wrong.text

    response = await sign_in(client)

    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=t-alice")
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/inbox" in cookie


async def test_gate_context_is_escaped(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    page = await client.get("/inbox")

    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text


async def test_a_decision_needs_the_session_and_its_csrf_token(
    client: httpx.AsyncClient, publisher: FakePublisher
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    anonymous = await client.post(
        "/inbox/gates/g1/decision", content="decision=approve", headers=form
    )
    assert anonymous.status_code == 401

    await sign_in(client)
    forged = await client.post(
        "/inbox/gates/g1/decision", content="decision=approve&csrf=guess", headers=form
    )
    assert forged.status_code == 403

    good = await client.post(
        "/inbox/gates/g1/decision",
        content=f"decision=approve&comment=ok&csrf={csrf_token('t-alice')}",
        headers=form,
    )
    assert good.status_code == 303
    assert "recorded" in good.headers["location"]
    [envelope] = publisher.envelopes("baton.commands")
    assert (envelope.data["approver"], envelope.data["channel"]) == ("alice", "web")


async def test_a_non_approver_is_told_why(
    client: httpx.AsyncClient, publisher: FakePublisher
) -> None:
    await sign_in(client, "t-bob")
    page = await client.post(
        "/inbox/gates/g1/decision",
        content=f"decision=approve&csrf={csrf_token('t-bob')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=True,
    )

    assert "Refused (kept in the run&#39;s history): bob is not an approver of gate g1" in page.text
    [refused] = publisher.envelopes("baton.commands")  # on the record, marked refused
    assert str(refused.data["refused"]).startswith("bob is not an approver of gate g1")
