"""The scheduler end to end: a durable delay survives a SIGKILL; dedup after the window;
a sub-story's start and result cross runs (and partitions) as commands."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from platform_kit import VIEWER, FakeHttp, Platform

from baton_common import ids
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually

pytestmark = pytest.mark.integration

DELAYED = """
id: delayed-ping
version: 1
trigger:
  webhook: {path: delayed-ping}
  dedup: {key: "{{ event.key }}", window: 1h}
steps:
  wait: {delay: {for: 8s}}
  ping:
    needs: [wait]
    action: http
    with: {method: GET, url: "{{ event.url }}"}
"""

DEDUPED = """
id: deduped-ping
version: 1
trigger:
  webhook: {path: deduped-ping}
  dedup: {key: "{{ event.key }}", window: 4s}
steps:
  ping: {action: http, with: {method: GET, url: "{{ event.url }}"}}
"""


CALLER = """
id: e2e-caller
version: 1
trigger: {webhook: {path: e2e-caller}}
steps:
  check:
    story: {id: e2e-callee}
    with: {url: "{{ event.url }}"}
  after: {needs: [check], action: http, with: {method: GET, url: "{{ event.url }}-after"}}
"""

CALLEE = """
id: e2e-callee
version: 1
trigger: {webhook: {path: e2e-callee}}
inputs: {url: {required: true}}
steps:
  ping: {action: http, with: {method: GET, url: "{{ event.url }}-child"}}
"""


@pytest.fixture(scope="module")
def stories(platform: Platform, topics: TopicSettings) -> None:
    from baton_cli.kafka_ops import publish_stories

    texts = [DELAYED, DEDUPED, CALLEE, CALLER]
    asyncio.run(publish_stories(platform.bootstrap, topics, [(parse_story(t), t) for t in texts]))


def post(platform: Platform, path: str, body: dict[str, str]) -> None:
    async def accepted() -> bool | None:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{platform.url('ingest')}/webhooks/{path}", json=body, timeout=30
            )
        # 404 until ingest has read the newly published story
        if response.status_code == 404:
            return None
        assert response.status_code == 202, response.text
        return True

    asyncio.run(eventually(accepted, within=30, what=f"webhook {path} accepted"))


def timeline(platform: Platform, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{platform.url('audit')}/runs/{run_id}", headers=VIEWER, timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["timeline"]
    return items


def wait_for(platform: Platform, run_id: str, event_type: str) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        events = await asyncio.to_thread(timeline, platform, run_id)
        return events if any(e["type"] == event_type for e in events) else None

    return asyncio.run(eventually(probe, within=60, what=f"{event_type} in run {run_id}"))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["type"]).removeprefix("baton.").removesuffix(".v1") for e in events]


def test_a_durable_delay_fires_once_after_the_scheduler_is_killed(
    platform: Platform, stories: None, fake_http: FakeHttp
) -> None:
    post(platform, "delayed-ping", {"key": "k-kill", "url": f"{fake_http.url}/after-kill"})
    run_id = ids.run_id_for("delayed-ping", "k-kill")
    before = wait_for(platform, run_id, "baton.timer.scheduled.v1")
    assert "timer.fired" not in types(before)  # the kill comes while the timer is pending
    scheduler = platform.services["scheduler"]
    scheduler.kill()
    scheduler.start()
    scheduler.wait_ready()
    events = wait_for(platform, run_id, "baton.run.succeeded.v1")
    assert types(events) == [
        "run.started",
        "timer.scheduled",
        "timer.fired",
        "step.succeeded",
        "step.dispatched",
        "step.succeeded",
        "run.succeeded",
    ]
    assert len(fake_http.calls_to("/after-kill")) == 1
    verdict = httpx.get(
        f"{platform.url('audit')}/runs/{run_id}/verify", headers=VIEWER, timeout=10
    ).json()
    assert verdict["intact"] is True, verdict


def test_a_dedup_key_starts_a_new_run_after_its_window(
    platform: Platform, stories: None, fake_http: FakeHttp
) -> None:
    body = {"key": "k-window", "url": f"{fake_http.url}/dedup"}
    first = ids.run_id_for("deduped-ping", "k-window")
    post(platform, "deduped-ping", body)
    post(platform, "deduped-ping", body)  # inside the 4 s window
    events = wait_for(platform, first, "baton.run.deduplicated.v1")
    assert types(events).count("run.started") == 1
    time.sleep(4.5)  # let the window pass: the point of this test is the window's end
    post(platform, "deduped-ping", body)
    second = ids.generation_run_id(first, 1, int(platform.env["BATON_TOPICS__PARTITIONS"]))
    later = wait_for(platform, second, "baton.run.succeeded.v1")
    assert types(later)[0] == "run.started"
    assert later[0]["data"]["dedup_slot"] == first
    slot = wait_for(platform, first, "baton.dedup.advanced.v1")
    assert [e["data"]["current"] for e in slot if e["type"] == "baton.dedup.advanced.v1"] == [
        second
    ]
    assert len(fake_http.calls_to("/dedup")) == 2


def test_a_sub_story_runs_as_its_own_run_and_its_result_continues_the_caller(
    platform: Platform, stories: None, fake_http: FakeHttp
) -> None:
    post(platform, "e2e-caller", {"url": f"{fake_http.url}/sub"})

    async def caller_run() -> str | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{platform.url('audit')}/runs",
                params={"story": "e2e-caller"},
                headers=VIEWER,
                timeout=10,
            )
        response.raise_for_status()
        found = [r["run_id"] for r in response.json()["items"] if r["story_id"] == "e2e-caller"]
        return found[0] if found else None

    parent = asyncio.run(eventually(caller_run, within=30, what="the caller run in audit"))
    events = wait_for(platform, parent, "baton.run.succeeded.v1")
    dispatched = next(e for e in events if e["type"] == "baton.step.dispatched.v1")
    child = str(dispatched["data"]["child_run_id"])
    child_events = wait_for(platform, child, "baton.run.succeeded.v1")
    assert child_events[0]["data"]["parent_run_id"] == parent
    check = next(e for e in events if e["type"] == "baton.step.succeeded.v1")
    assert check["data"]["output"]["run_id"] == child
    assert [c.path for c in fake_http.calls] == ["/sub-child", "/sub-after"]
