"""Each role against each approvals route (ADR 0900): reading needs ``viewer``, deciding
``approver`` and, as before, being one of the gate's approvers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from roles_kit import AUTH, EVERYONE, Route, check, table

from baton_approvals.inbox import COOKIE, csrf_token
from baton_approvals.main import create_app
from baton_approvals.settings import ApprovalsSettings

from .fakes import FakePublisher, opened, project_gates

pytestmark = pytest.mark.integration

DECIDERS = frozenset({"approver", "admin", "team-admin"})  # all in group secops-oncall
ROUTES = [
    Route("GET", "/approvals", EVERYONE),
    Route("GET", "/approvals/g1", EVERYONE),
    Route("POST", "/approvals/g1/decision", DECIDERS, 202, {"decision": "approve"}),
]


@pytest.fixture
async def client(
    settings: ApprovalsSettings, publisher: FakePublisher
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the role table's tokens and gate g1 pending for group:secops-oncall."""
    configured = settings.model_copy(update={"auth": AUTH})
    app: FastAPI = create_app(configured, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        await project_gates(
            settings, [opened("g1", run_id="r1", approvers=["group:secops-oncall"])]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://approvals") as client:
            yield client


@pytest.mark.parametrize(("route", "caller"), table(ROUTES))
async def test_roles_on_the_approvals_routes(
    client: httpx.AsyncClient, publisher: FakePublisher, route: Route, caller: str
) -> None:
    response = await check(client, route, caller)
    decided = route.method == "POST" and response.status_code == 202
    assert len(publisher.envelopes("baton.commands")) == (1 if decided else 0)


async def test_the_inbox_signs_in_viewers_but_records_decisions_of_approvers_only(
    client: httpx.AsyncClient, publisher: FakePublisher
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    nobody = await client.post("/inbox/login", content="token=tok-no-roles", headers=form)
    assert nobody.status_code == 403
    assert "nora lacks the viewer role" in nobody.text

    viewer = await client.post("/inbox/login", content="token=tok-viewer", headers=form)
    assert viewer.status_code == 303
    client.cookies.set(COOKIE, "tok-viewer", path="/inbox")
    refused = await client.post(
        "/inbox/gates/g1/decision",
        content=f"decision=approve&csrf={csrf_token('tok-viewer')}",
        headers=form,
    )
    assert refused.status_code == 303
    assert "vera%20lacks%20the%20approver%20role" in refused.headers["location"]
    assert publisher.envelopes("baton.commands") == []
