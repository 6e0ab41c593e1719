"""Pending gates survive restarts of approvals, the scheduler and Kafka itself (issue 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from platform_kit import Platform, build_platform, topic_env
from private_kafka import Broker

from baton_cli.kafka_ops import publish_stories
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GATES = 100
ALICE = {"Authorization": "Bearer tok-alice"}
STORY = """
id: gate-only
version: 1
trigger: {webhook: {path: gate-only}}
steps:
  approve:
    approval: {approvers: ["group:secops-oncall"], message: "host {{ event.host }}"}
"""


def _topics(namespace: str) -> TopicSettings:
    env = topic_env(namespace)
    return TopicSettings.model_validate(
        {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in env.items()}
    )


async def _gates(platform: Platform, state: str) -> dict[str, str] | None:
    async with httpx.AsyncClient(base_url=platform.url("approvals")) as client:
        listed = await client.get(
            "/approvals", params={"state": state, "limit": 500}, headers=ALICE
        )
    if listed.status_code != 200:
        return None
    found = {g["run_id"]: g["gate_id"] for g in listed.json()["items"]}
    return found if len(found) == GATES else None


async def test_pending_gates_survive_a_kafka_restart(
    broker: Broker, database_url: str, tmp_path: Path
) -> None:
    platform = build_platform(broker.bootstrap, database_url, tmp_path)
    await provision_topics(broker.bootstrap, _topics(platform.namespace))
    await publish_stories(
        broker.bootstrap, _topics(platform.namespace), [(parse_story(STORY), STORY)]
    )
    try:
        for service in platform.services.values():
            service.start()
        for service in platform.services.values():
            await asyncio.to_thread(service.wait_ready)
        async with httpx.AsyncClient(base_url=platform.url("ingest"), timeout=30) as client:
            for i in range(GATES):
                answer = await client.post("/webhooks/gate-only", json={"host": f"h{i}"})
                assert answer.status_code == 202, answer.text
        pending = await eventually(
            lambda: _gates(platform, "pending"), within=120, what=f"{GATES} pending gates"
        )

        approvals, scheduler = platform.services["approvals"], platform.services["scheduler"]
        approvals.kill()
        scheduler.kill()
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        for service in (scheduler, approvals):
            service.start()
        for service in (scheduler, approvals):
            await asyncio.to_thread(service.wait_ready, 120)

        assert (
            await eventually(
                lambda: _gates(platform, "pending"), within=120, what="gates after the restarts"
            )
            == pending
        )
        async with httpx.AsyncClient(base_url=platform.url("approvals"), timeout=30) as client:
            answers = [
                (
                    await client.post(
                        f"/approvals/{gate}/decision",
                        json={"decision": "approve", "comment": "after Kafka restarted"},
                        headers=ALICE,
                    )
                ).status_code
                for gate in pending.values()
            ]
        assert answers == [202] * GATES
        approved = await eventually(
            lambda: _gates(platform, "approved"), within=120, what="all gates approved"
        )
        assert approved == pending
    finally:
        platform.stop()
