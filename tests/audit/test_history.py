"""Step attempts, AI interactions, approvals' timings and stories, through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from roles_kit import ADMIN

from baton_audit.db import create_pool
from baton_audit.main import create_app
from baton_audit.settings import AuditSettings
from baton_audit.writer import AuditWriter

from .fakes import (
    AI_OUTPUT,
    STORIES_TOPIC,
    STORY,
    STORY_YAML,
    T0,
    TOPIC,
    FakePublisher,
    approved_run,
    projector_on,
    records,
    story_records,
    triage_run,
)

pytestmark = pytest.mark.integration

WRITER = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC)


@pytest.fixture
async def client(settings: AuditSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The API over a store holding t1 (triage), r1 (approved), r2..r6 and two story versions."""
    app: FastAPI = create_app(settings, publisher=FakePublisher(), consume=False)
    async with app.router.lifespan_context(app):
        pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
        try:
            projector = projector_on(pool, WRITER.apply)
            await projector.apply_batch(TOPIC, 0, records(triage_run("t1")))
            log = []
            for n in range(1, 7):
                log += approved_run(f"r{n}", start=T0 + timedelta(hours=n))
            await projector.apply_batch(TOPIC, 1, records(log, partition=1))
            await projector.apply_batch(STORIES_TOPIC, 0, story_records(3, 4))
        finally:
            await pool.close()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://audit", headers=ADMIN
        ) as c:
            yield c


async def test_a_step_shows_each_attempt_with_its_error_and_retries(
    client: httpx.AsyncClient,
) -> None:
    log = triage_run("t1")
    response = await client.get("/runs/t1/steps/lookup")
    assert response.status_code == 200
    body = response.json()
    assert body["state"]["status"] == "succeeded"
    first, second = body["attempts"]
    assert (first["attempt"], first["outcome"], first["retries"]) == (1, "failed", 0)
    assert (first["error_kind"], first["error_type"], first["error_message"]) == (
        "retryable",
        "http.503",
        "HTTP 503",
    )
    assert first["will_retry"] is True
    assert first["input"] == {"url": "https://example.invalid/a"}
    assert first["duration_seconds"] == (log[2].time - log[1].time).total_seconds()
    assert (second["attempt"], second["outcome"], second["retries"]) == (2, "succeeded", 1)
    assert second["output"] == {"status": 200}
    assert body["ai_interactions"] == []


async def test_an_ai_step_records_what_it_saw_and_said(client: httpx.AsyncClient) -> None:
    body = (await client.get("/runs/t1/steps/verdict")).json()
    [ai] = body["ai_interactions"]
    assert (ai["provider"], ai["model"], ai["action"]) == (
        "openai-compatible",
        "small-model",
        "ai.classify",
    )
    reported = AI_OUTPUT["ai"]
    assert isinstance(reported, dict)
    assert ai["prompt"] == reported["prompt"]
    assert ai["response"] == {"label": "malicious"}
    assert (ai["input_tokens"], ai["output_tokens"]) == (120, 9)
    assert ai["record"] == AI_OUTPUT["ai"]


async def test_approvals_carry_their_timing(client: httpx.AsyncClient) -> None:
    body = (await client.get("/runs/t1/steps/review")).json()
    [gate] = body["approvals"]
    assert (gate["decision"], gate["approver"], gate["wait_seconds"]) == ("approved", "bob", 60.0)


async def test_an_unknown_step_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/runs/t1/steps/nope")
    assert response.status_code == 404
    assert "no step nope" in response.json()["detail"]


async def test_runs_filter_by_correlation_actor_time_and_version(
    client: httpx.AsyncClient,
) -> None:
    async def ids(**params: str | int) -> list[str]:
        response = await client.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["run_id"] for r in response.json()["items"]]

    assert await ids(correlation_id="corr-r3") == ["r3"]
    assert await ids(correlation_id="A-9") == []  # alert id is in the trigger, not a key
    assert await ids(actor="bob") == ["t1"]
    assert await ids(actor="scheduler", limit=500) == ["r6", "r5", "r4", "r3", "r2", "r1", "t1"]
    since = (T0 + timedelta(hours=2)).isoformat()
    until = (T0 + timedelta(hours=4)).isoformat()
    assert await ids(since=since, until=until) == ["r3", "r2"]
    assert await ids(story=STORY, version=4, status="succeeded", limit=2) == ["r6", "r5"]
    assert await ids(version=5) == []


async def test_cursor_pages_cover_every_run_once(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/runs", params=params)).json()
        seen += [r["run_id"] for r in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["r6", "r5", "r4", "r3", "r2", "r1", "t1"]
    assert pages == 3


async def test_a_forged_cursor_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/runs", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "not a cursor" in response.json()["detail"]


async def test_stories_and_their_versions(client: httpx.AsyncClient) -> None:
    [latest] = (await client.get("/stories")).json()["items"]
    assert (latest["story_id"], latest["version"], latest["owner"]) == (STORY, 4, "secops")
    versions = (await client.get(f"/stories/{STORY}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [3, 4]
    assert versions[0]["source"] == STORY_YAML.format(version=3)
    assert (await client.get("/stories/nope/versions")).status_code == 404


async def test_openapi_documents_the_query_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/runs",
        "/runs/{run_id}/steps/{step}",
        "/runs/{run_id}/events",
        "/runs/{run_id}/evidence",
        "/stories",
        "/stories/{story_id}/versions",
        "/export/events",
        "/admin/rebuild",
        "/admin/checksum",
    ):
        assert path in spec["paths"], path
    params = {p["name"] for p in spec["paths"]["/runs"]["get"]["parameters"]}
    assert params >= {"story", "version", "status", "since", "until", "correlation_id", "actor"}
    assert "cursor" in params
