"""End to end: an alert produced straight to Kafka as a CloudEvent starts a run, and the
same event id produced again starts no second one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from platform_kit import FakeHttp, Platform

from baton_common import ids
from baton_common.kafka import make_producer
from baton_common.settings import TopicSettings
from baton_common.testing import eventually

from .test_walking_skeleton import ALICE, pending_gate

pytestmark = pytest.mark.integration


async def test_a_kafka_native_cloudevent_starts_one_run(
    platform: Platform, fake_http: FakeHttp, topics: TopicSettings
) -> None:
    event_id = f"edr-{uuid.uuid4()}"
    alert = {
        "message": "from kafka",
        "lookup_url": f"{fake_http.url}/lookup",
        "notify_url": f"{fake_http.url}/notify",
    }
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"hello"),
        ("ce_type", b"com.example.alert.v1"),
        ("content-type", b"application/json"),
    ]
    producer = make_producer(platform.bootstrap, client_id="e2e-kafka-native")
    await producer.start()
    try:
        for _ in range(2):  # the producer retries: same CloudEvent id
            await producer.send_and_wait(
                topics.ingest, json.dumps(alert).encode(), key=b"edr", headers=headers
            )
    finally:
        await producer.stop()

    run_id = ids.run_id_for("hello-approval", f"ingest:{event_id}")
    gate = await pending_gate(platform, run_id)
    assert gate["message"].startswith("Send 'from kafka'?")

    async def deduplicated() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{platform.url('audit')}/runs/{run_id}", headers=ALICE)
        if response.status_code != 200:
            return None
        timeline: list[dict[str, Any]] = response.json()["timeline"]
        types = [e["type"] for e in timeline]
        return timeline if "baton.run.deduplicated.v1" in types else None

    timeline = await eventually(deduplicated, within=60, what="the repeat deduplicated")
    assert [e["type"] for e in timeline].count("baton.run.started.v1") == 1
