"""Each role against each audit route (ADR 0900): history needs ``viewer`` on any team,
``/admin`` (rebuild, positions, checksum) an unscoped ``admin``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from roles_kit import AUTH, CALLERS, NO_TOKEN, UNKNOWN_TOKEN, Route, check

from baton_audit.api import Admin, audit_router
from baton_audit.db import Pool
from baton_audit.store import AuditStore
from baton_common.auth import Gatekeeper, authenticator_of

from .fakes import STORIES_TOPIC, STORY, TOPIC, approved_run, projector_on, records, story_records

pytestmark = pytest.mark.integration

READERS = frozenset(CALLERS) - {"no-roles"}
ADMINS = frozenset({"admin"})  # admin@secops is an admin of one team, not of the platform
ROUTES = [
    Route("GET", "/runs", READERS),
    Route("GET", "/runs/r1", READERS),
    Route("GET", "/runs/r1/timeline", READERS),
    Route("GET", "/runs/r1/events", READERS),
    Route("GET", "/runs/r1/steps/review", READERS),
    Route("GET", "/runs/r1/verify", READERS),
    Route("GET", "/runs/r1/evidence", READERS),
    Route("GET", "/export/events?run_id=r1", READERS),
    Route("GET", "/stories", READERS),
    Route("GET", f"/stories/{STORY}/versions", READERS),
    Route("POST", "/admin/rebuild", ADMINS, 202),
    Route("GET", "/admin/positions", ADMINS),
    Route("GET", "/admin/checksum", ADMINS),
]


class Rebuilds:
    """The admin operations, counting rebuilds instead of resetting a projection."""

    def __init__(self) -> None:
        self.count = 0

    async def rebuild(self) -> None:
        self.count += 1

    async def checksum(self) -> tuple[str, dict[str, int]]:
        return "c0ffee", {"runs": 1}

    async def positions(self) -> dict[str, dict[int, int]]:
        return {TOPIC: {0: 1}}


@pytest.fixture
async def seeded(pool: Pool) -> Pool:
    projector = projector_on(pool)
    await projector.apply_batch(TOPIC, 0, records(approved_run("r1")))
    await projector.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))
    return pool


@pytest.fixture
async def client(seeded: Pool) -> AsyncIterator[tuple[httpx.AsyncClient, Rebuilds]]:
    ops = Rebuilds()
    admin = Admin(rebuild=ops.rebuild, checksum=ops.checksum, positions=ops.positions)
    app = FastAPI()
    app.include_router(
        audit_router(
            store=lambda: AuditStore(seeded),
            admin=lambda: admin,
            gatekeeper=Gatekeeper(authenticator_of(AUTH)),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as http:
        yield http, ops


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_roles_on_the_audit_routes(
    client: tuple[httpx.AsyncClient, Rebuilds], route: Route
) -> None:
    http, ops = client
    for caller in [NO_TOKEN, UNKNOWN_TOKEN, *CALLERS]:
        await check(http, route, caller)
    assert ops.count == (1 if route.path == "/admin/rebuild" else 0)
