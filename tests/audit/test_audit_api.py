"""The audit HTTP API against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from roles_kit import ADMIN

from baton_audit.db import create_pool
from baton_audit.main import create_app
from baton_audit.settings import AuditSettings

from .fakes import (
    STORY,
    T0,
    TOPIC,
    FakePublisher,
    approved_run,
    projector_on,
    records,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(settings: AuditSettings, publisher: FakePublisher) -> AsyncIterator[FastAPI]:
    app = create_app(settings, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI, settings: AuditSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, whose store holds r1 (succeeded) and r2 (waiting for approval)."""
    pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
    try:
        projector = projector_on(pool)
        await projector.apply_batch(TOPIC, 0, records(approved_run("r1")))
        waiting = approved_run("r2", start=T0 + timedelta(hours=1))[:4]
        await projector.apply_batch(TOPIC, 1, records(waiting, partition=1))
    finally:
        await pool.close()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://audit", headers=ADMIN
    ) as client:
        yield client


async def test_list_runs(client: httpx.AsyncClient) -> None:
    everything = await client.get("/runs")
    assert everything.status_code == 200
    assert [r["run_id"] for r in everything.json()["items"]] == ["r2", "r1"]
    assert everything.json()["items"][0]["status"] == "waiting_approval"

    waiting = await client.get("/runs", params={"status": "waiting_approval"})
    assert [r["run_id"] for r in waiting.json()["items"]] == ["r2"]
    newest = await client.get("/runs", params={"story": STORY, "limit": 1})
    assert [r["run_id"] for r in newest.json()["items"]] == ["r2"]
    assert (await client.get("/runs", params={"story": "nope"})).json()["items"] == []
    assert (await client.get("/runs", params={"status": "asleep"})).status_code == 422
    assert (await client.get("/runs", params={"limit": 0})).status_code == 422


async def test_a_run_with_its_timeline_and_approvals(client: httpx.AsyncClient) -> None:
    log = approved_run("r1")

    response = await client.get("/runs/r1")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"run", "timeline", "approvals"}
    run = body["run"]
    assert (run["run_id"], run["status"], run["story_id"], run["last_seq"]) == (
        "r1",
        "succeeded",
        STORY,
        6,
    )
    assert run["steps"]["review"]["status"] == "succeeded"
    assert run["steps"]["review"]["decided_by"] == "alice"
    assert body["timeline"][0] == {
        "seq": 1,
        "type": "baton.run.started.v1",
        "time": "2025-03-01T12:01:00Z",
        "id": "r1-e1",
        "causationid": "r1-cmd1",
        "correlationid": "corr-r1",
        "actor": "scheduler",
        "data": log[0].data,
        "prevhash": log[0].prevhash,
        "hash": log[0].hash,
    }
    assert [e["seq"] for e in body["timeline"]] == [1, 2, 3, 4, 5, 6]
    [approval] = body["approvals"]
    assert (approval["gate_id"], approval["decision"], approval["approver"]) == (
        "gate-r1",
        "approved",
        "alice",
    )

    timeline = await client.get("/runs/r1/timeline")
    assert timeline.json() == {"items": body["timeline"]}


async def test_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    for path in ["/runs/nope", "/runs/nope/timeline", "/runs/nope/verify"]:
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "no run nope in the audit store"}


TAMPERING = {
    "edited": ["update events set actor = 'mallory' where run_id = 'r1' and seq = 3"],
    "deleted": ["delete from events where run_id = 'r1' and seq = 3"],
    "reordered": [
        "update events set seq = case seq when 3 then 4 else 3 end"
        " where run_id = 'r1' and seq in (3, 4)"
    ],
    "inserted": [
        "insert into events select kafka_topic, kafka_partition, 999, id, run_id,"
        " seq, type, time, source, causationid, correlationid, actor, storyid, storyversion,"
        " prevhash, hash, data, time_text, specversion, datacontenttype, traceparent"
        " from events where run_id = 'r1' and seq = 3"
    ],
}
# The store keeps each event's seq once, in the envelope it rebuilds (ADR 0540), and orders a
# run's events by it: swapping two rows' seqs changes hashed content, so the store reports
# the reorder as an edit. A reorder of the log itself is told apart (test_chain_breaks.py).
VERDICT = {"reordered": "edited"}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_verify_names_the_tampering_in_the_store(
    client: httpx.AsyncClient, settings: AuditSettings, kind: str
) -> None:
    assert (await client.get("/runs/r1/verify")).json() == {
        "run_id": "r1",
        "events": 6,
        "intact": True,
        "problem": None,
        "kind": None,
    }

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": settings.db_schema}
    )
    try:
        for statement in TAMPERING[kind]:
            await conn.execute(statement)
    finally:
        await conn.close()

    verdict = (await client.get("/runs/r1/verify")).json()
    assert verdict["intact"] is False
    assert verdict["kind"] == VERDICT.get(kind, kind), verdict["problem"]


async def test_operations_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert "baton_audit_records_total" in (await client.get("/metrics")).text


async def test_readiness_reports_what_is_not_started(settings: AuditSettings) -> None:
    app = create_app(settings, publisher=FakePublisher(), consume=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == {
        "postgres": "not started",
        "kafka_consumer": "not started",
    }


async def test_openapi_lists_the_routes(settings: AuditSettings) -> None:
    paths = create_app(settings, publisher=FakePublisher(), consume=False).openapi()["paths"]

    assert {"/runs", "/runs/{run_id}", "/runs/{run_id}/timeline", "/runs/{run_id}/verify"} <= set(
        paths
    )
