"""Slack and the web inbox end to end: the real scheduler, Kafka and PostgreSQL.

The scheduler and approvals run as processes; a story with one approval step is
published and runs are started by appending ``StartRun`` to ``baton.commands``. Slack
is a fake speaking the Web API; the web inbox is driven in Debian's headless Chromium
through Playwright (no browser download: ``executable_path``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_kit import Platform, build_platform, topic_env

from baton_common.commands import StartRun
from baton_common.kafka import make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics

from .fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, Message, button_press

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STORY = """
id: gate-e2e
version: 1
owner: secops
trigger:
  webhook: {path: gate-e2e}
steps:
  review:
    approval:
      approvers: ["group:secops-oncall", "carol"]
      message: "Contain host {{ event.host }}?"
"""
ALICE = {"Authorization": "Bearer tok-alice"}


def _topics(namespace: str) -> TopicSettings:
    fields = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in topic_env(namespace).items()}
    return TopicSettings.model_validate(fields)


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({"U_ALICE": "alice@example.test", "U_BOB": "bob@example.test"}) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    database_url: str,
    slack: FakeSlack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    """Scheduler and approvals as processes, in a fresh topic namespace."""
    from baton_cli.kafka_ops import publish_stories

    platform = build_platform(kafka_bootstrap, database_url, tmp_path_factory.mktemp("gate-logs"))
    topics = _topics(platform.namespace)
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    asyncio.run(publish_stories(kafka_bootstrap, topics, [(parse_story(STORY), STORY)]))
    platform.services["approvals"].env.update(
        {
            "BATON_APPROVALS_DENY_REQUIRES_COMMENT": "true",
            "BATON_APPROVALS_SLACK__API_URL": slack.api_url,
            "BATON_APPROVALS_SLACK__BOT_TOKEN": BOT_TOKEN,
            "BATON_APPROVALS_SLACK__SIGNING_SECRET": SIGNING_SECRET,
            "BATON_APPROVALS_SLACK__CHANNEL": "#approvals",
            "BATON_APPROVALS_SLACK__GROUPS": json.dumps({"alice@example.test": ["secops-oncall"]}),
            "BATON_APPROVALS_SLACK__POLL_SECONDS": "0.1",
        }
    )
    running = [platform.services[name] for name in ("scheduler", "approvals")]
    try:
        for service in running:
            service.start()
        for service in running:
            service.wait_ready()
        yield platform
    finally:
        for service in running:
            service.stop()
            print(f"--- {service.name} log tail ---\n{service.tail(15)}")


async def start_run(platform: Platform, host: str) -> str:
    topics = _topics(platform.namespace)
    run_id = str(uuid.uuid4())
    command = StartRun(run_id=run_id, story_id="gate-e2e", trigger={"host": host})
    envelope = to_envelope(
        command, id=str(uuid.uuid4()), source="tests", time=datetime.now(UTC), subject=run_id
    )
    producer = make_producer(platform.bootstrap, client_id="tests")
    await producer.start()
    try:
        await outbound(topics.commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()
    return run_id


async def gate_of(platform: Platform, run_id: str, state: str = "pending") -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=platform.url("approvals")) as client:
            listed = await client.get("/approvals", params={"state": state}, headers=ALICE)
            found = [g for g in listed.json()["items"] if g["run_id"] == run_id]
            if not found:
                return None
            detail: dict[str, Any] = (
                await client.get(f"/approvals/{found[0]['gate_id']}", headers=ALICE)
            ).json()
            return detail

    return await eventually(probe, within=60, what=f"a {state} gate of run {run_id}")


async def test_slack_press_decides_the_gate_and_updates_the_message(
    stack: Platform, slack: FakeSlack
) -> None:
    run_id = await start_run(stack, "h-slack")
    gate = await gate_of(stack, run_id)

    async def posted() -> Message | None:
        return slack.message_for(gate["gate_id"])

    message = await eventually(posted, within=30, what="the gate's Slack message")
    assert "Contain host h-slack?" in json.dumps(message.blocks)
    url = f"{stack.url('approvals')}/slack/interactions"
    async with httpx.AsyncClient() as client:
        forged = button_press(message, user="U_ALICE", action="baton_approve", secret="x" * 32)
        stale = button_press(message, user="U_ALICE", action="baton_approve", at=time.time() - 600)
        refused = [
            await client.post(url, content=body, headers=headers)
            for body, headers in (forged, stale)
        ]
        body, headers = button_press(message, user="U_ALICE", action="baton_approve")
        genuine = await client.post(url, content=body, headers=headers)
        replayed = await client.post(url, content=body, headers=headers)

    assert [r.status_code for r in refused] == [401, 401]
    assert genuine.status_code == 200
    assert genuine.json()["ok"] is True, genuine.text
    assert replayed.status_code == 401
    closed = await gate_of(stack, run_id, "approved")
    assert closed["decided_by"] == "alice@example.test"
    assert [(d["approver"], d["channel"]) for d in closed["decisions"]] == [
        ("alice@example.test", "slack")
    ]

    async def updated() -> dict[str, Any] | None:
        for call in slack.calls_of("chat.update"):
            if call.args["ts"] == message.ts:
                return call.args
        return None

    update = await eventually(updated, within=30, what="chat.update of the gate's message")
    shown = json.dumps(update["blocks"])
    assert "Approved by alice@example.test at " in shown
    assert '"actions"' not in shown


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: deploy/local/bootstrap.sh installs Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_web_inbox_in_chromium(stack: Platform, browser: Any, tmp_path: Path) -> None:
    approve_run = await start_run(stack, "h-web-1")
    deny_run = await start_run(stack, "h-web-2")
    to_approve = await gate_of(stack, approve_run)
    to_deny = await gate_of(stack, deny_run)
    page = await browser.new_page()
    inbox = f"{stack.url('approvals')}/inbox"

    await page.goto(inbox)
    assert page.url.endswith("/inbox/login")  # not signed in
    await page.fill("#token", "tok-wrong")
    await page.click("#sign-in")
    assert "Not signed in: unknown token" in await page.inner_text("#flash")
    await page.fill("#token", "tok-alice")
    await page.click("#sign-in")
    assert (await page.inner_text("#who")).startswith("alice")

    section = page.locator(f"section[data-gate-id='{to_approve['gate_id']}']")
    assert "Contain host h-web-1?" in await section.inner_text()
    await section.locator("textarea[name=comment]").fill("host confirmed compromised")
    await section.locator("button[value=approve]").click()
    assert "recorded; waiting for the scheduler" in await page.inner_text("#flash")

    # A deny needs a comment here (BATON_APPROVALS_DENY_REQUIRES_COMMENT).
    other = page.locator(f"section[data-gate-id='{to_deny['gate_id']}']")
    await other.locator("button[value=deny]").click()
    assert "a comment is required to deny" in await page.inner_text("#flash")
    other = page.locator(f"section[data-gate-id='{to_deny['gate_id']}']")
    await other.locator("textarea[name=comment]").fill("false positive")
    await other.locator("button[value=deny]").click()
    assert "Denial of gate" in await page.inner_text("#flash")

    async def history() -> dict[str, tuple[str, str]] | None:
        await page.goto(inbox)
        rows = page.locator("#decided tr[data-gate-id]")
        seen = {}
        for i in range(await rows.count()):
            row = rows.nth(i)
            gate_id = await row.get_attribute("data-gate-id")
            outcome = await row.locator(".outcome").inner_text()
            seen[str(gate_id)] = (outcome, await row.locator(".by").inner_text())
        wanted = {to_approve["gate_id"], to_deny["gate_id"]}
        return seen if wanted <= set(seen) else None

    decided = await eventually(history, within=60, what="both gates in the decided history")
    assert decided[to_approve["gate_id"]] == ("approved", "alice")
    assert decided[to_deny["gate_id"]] == ("denied", "alice")
    assert await page.locator(f"section[data-gate-id='{to_approve['gate_id']}']").count() == 0
    await page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    approved = await gate_of(stack, approve_run, "approved")
    assert approved["comment"] == "host confirmed compromised"
    assert [(d["approver"], d["channel"]) for d in approved["decisions"]] == [("alice", "web")]


async def baton(stack: Platform, *args: str, token: str = "tok-alice") -> Any:
    from typer.testing import CliRunner

    from baton_cli.main import app

    env = {"BATON_APPROVALS_URL": stack.url("approvals"), "BATON_TOKEN": token}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def test_the_cli_lists_shows_decides_and_shows_history(stack: Platform) -> None:
    run_id = await start_run(stack, "h-cli")
    gate_id = (await gate_of(stack, run_id))["gate_id"]

    mine = await baton(stack, "approvals", "list", "--mine", "--group", "secops-oncall")
    assert mine.exit_code == 0, mine.output
    assert f"{gate_id}  pending" in mine.output
    assert "Contain host h-cli?" in mine.output
    theirs = await baton(stack, "approvals", "list", "--mine", token="tok-mallory")
    assert gate_id not in theirs.output
    listed = await baton(stack, "approvals", "list", "--state", "all", "--json")
    assert gate_id in {g["gate_id"] for g in json.loads(listed.output)}

    bare = await baton(stack, "approvals", "deny", gate_id)
    assert bare.exit_code == 1
    assert "HTTP 422: a comment is required to deny a gate" in bare.output
    refused = await baton(stack, "approvals", "approve", gate_id, token="tok-mallory")
    assert refused.exit_code == 1
    assert "not allowed (HTTP 403): mallory is not an approver" in refused.output
    approved = await baton(stack, "approvals", "approve", gate_id, "-m", "from the CLI")
    assert approved.exit_code == 0, approved.output
    assert f"approve recorded for gate {gate_id}" in approved.output

    await gate_of(stack, run_id, "approved")
    again = await baton(stack, "approvals", "deny", gate_id, "-m", "changed my mind")
    assert again.exit_code == 1
    assert f"HTTP 409: gate {gate_id} is approved" in again.output
    shown = await baton(stack, "approvals", "show", gate_id)
    assert shown.exit_code == 0, shown.output
    assert f"gate {gate_id}  approved" in shown.output
    assert "by alice" in shown.output
    assert "comment   from the CLI" in shown.output
    assert "alice asked to approve via api: from the CLI" in shown.output
    history = await baton(stack, "approvals", "history")
    assert f"{gate_id}  approved by alice" in history.output
    unknown = await baton(stack, "approvals", "show", "no-such-gate")
    assert unknown.exit_code == 1
    assert "HTTP 404: no approval gate no-such-gate" in unknown.output


async def test_a_hundred_pending_gates_survive_restarts_and_a_dropped_store(
    stack: Platform, slack: FakeSlack
) -> None:
    import asyncpg

    from baton_approvals.db import quote_ident

    topics = _topics(stack.namespace)
    runs: set[str] = set()
    producer = make_producer(stack.bootstrap, client_id="tests")
    await producer.start()
    try:
        for i in range(100):
            run_id = str(uuid.uuid4())
            runs.add(run_id)
            command = StartRun(run_id=run_id, story_id="gate-e2e", trigger={"host": f"h{i}"})
            envelope = to_envelope(
                command,
                id=str(uuid.uuid4()),
                source="tests",
                time=datetime.now(UTC),
                subject=run_id,
            )
            await outbound(topics.commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()

    async def gates(state: str) -> dict[str, str] | None:
        async with httpx.AsyncClient(base_url=stack.url("approvals")) as client:
            listed = await client.get(
                "/approvals", params={"state": state, "limit": 500}, headers=ALICE
            )
        if listed.status_code != 200:
            return None
        found = {g["run_id"]: g["gate_id"] for g in listed.json()["items"] if g["run_id"] in runs}
        return found if len(found) == len(runs) else None

    pending = await eventually(lambda: gates("pending"), within=90, what="100 pending gates")

    # Kill both services, drop the whole inbox, and bring them back.
    approvals, scheduler = stack.services["approvals"], stack.services["scheduler"]
    approvals.kill()
    scheduler.kill()
    conn = await asyncpg.connect(stack.database_url)
    try:
        schema = approvals.env["BATON_APPROVALS_SCHEMA"]
        await conn.execute(f"drop schema {quote_ident(schema)} cascade")
    finally:
        await conn.close()
    for service in (scheduler, approvals):
        service.start()
    await asyncio.to_thread(scheduler.wait_ready)
    await asyncio.to_thread(approvals.wait_ready)

    rebuilt = await eventually(lambda: gates("pending"), within=90, what="100 rebuilt gates")
    assert rebuilt == pending

    async with httpx.AsyncClient(base_url=stack.url("approvals"), timeout=30) as client:
        limit = asyncio.Semaphore(10)

        async def approve(gate_id: str) -> int:
            async with limit:
                response = await client.post(
                    f"/approvals/{gate_id}/decision",
                    json={"decision": "approve", "comment": "after the restart"},
                    headers=ALICE,
                )
            return response.status_code

        answers = await asyncio.gather(*(approve(g) for g in rebuilt.values()))
    assert answers == [202] * 100
    approved = await eventually(lambda: gates("approved"), within=90, what="100 approved gates")
    assert approved == pending
