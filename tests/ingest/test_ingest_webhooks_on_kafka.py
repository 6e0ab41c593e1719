"""Webhook statuses against a real ingest process and the real Kafka.

Every refused request leaves nothing on ``baton.ingest``; every 202 names exactly the
records that are there.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from platform_kit import Service

from baton_common.settings import TopicSettings
from baton_ingest.signature import sign

from .kit import new_namespace, prepare, read_envelopes, service

pytestmark = pytest.mark.integration

KEY = "real-stack-key"


def story(story_id: str, webhook: str) -> str:
    return f"""
id: {story_id}
version: 1
trigger:
  webhook: {webhook}
steps:
  call: {{action: http, with: {{url: "https://x.example/"}}}}
"""


STORIES = [
    story("signed", "{path: signed, signature: {secret: KEY, timestamp_header: X-Timestamp}}"),
    story("github", "{path: github, signature: {secret: KEY, preset: github}}"),
    story("slack", "{path: slack, signature: {secret: KEY, preset: slack}}"),
    story("bearer", "{path: bearer, bearer: {secret: KEY}}"),
    story("open", "{path: open}"),
]


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Service, TopicSettings]]:
    namespace = new_namespace()
    topics = await prepare(kafka_bootstrap, namespace, STORIES)
    process = service(
        "ingest",
        kafka_bootstrap,
        namespace,
        Path(tmp_path_factory.mktemp("ingest-logs")),
        {"BATON_SECRET_KEY": KEY, "BATON_INGEST_MAX_BODY_BYTES": "4096"},
    )
    process.start()
    try:
        process.wait_ready()
        yield process, topics
    finally:
        process.stop()
        print(process.tail(20))


def timed(body: bytes, at: float, *, key: str = KEY) -> dict[str, str]:
    stamp = str(int(at))
    return {
        "content-type": "application/json",
        "X-Timestamp": stamp,
        "X-Baton-Signature": sign(body, key.encode(), timestamp=stamp),
    }


async def test_each_request_gets_its_documented_status_and_only_202s_reach_kafka(
    ingest: tuple[Service, TopicSettings], kafka_bootstrap: str
) -> None:
    process, topics = ingest
    body = b'{"alert_id": "a-1"}'
    now = time.time()
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:

        async def post(path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
            response = await client.post(f"/webhooks/{path}", content=content, headers=headers)
            if response.status_code == 202:
                accepted.extend(response.json().get("ids") or [response.json()["id"]])
            return response

        valid = timed(body, now)
        statuses = {
            "valid": await post("signed", body, valid),
            "replayed": await post("signed", body, valid),
            "wrong key": await post("signed", body, timed(body, now, key="guess")),
            "missing": await post("signed", body, {"content-type": "application/json"}),
            "stale": await post("signed", body, timed(body, now - 3600)),
            "github": await post(
                "github",
                body,
                {
                    "content-type": "application/json",
                    "X-Hub-Signature-256": sign(body, KEY.encode()),
                },
            ),
            "slack": await post(
                "slack",
                body,
                {
                    "content-type": "application/json",
                    "X-Slack-Request-Timestamp": str(int(now)),
                    "X-Slack-Signature": sign(
                        body, KEY.encode(), "v0=", timestamp=str(int(now)), slack_style=True
                    ),
                },
            ),
            "bearer": await post(
                "bearer",
                body,
                {"content-type": "application/json", "authorization": f"Bearer {KEY}"},
            ),
            "bad bearer": await post(
                "bearer", body, {"content-type": "application/json", "authorization": "Bearer x"}
            ),
            "too large": await post(
                "open",
                json.dumps({"pad": "x" * 5000}).encode(),
                {"content-type": "application/json"},
            ),
            "bad json": await post("open", b'{"a": ', {"content-type": "application/json"}),
            "text": await post("open", b"hello", {"content-type": "text/plain"}),
            "ndjson one bad line": await post(
                "open", b'{"n": 1}\n{"n": 2\n{"n": 3}\n', {"content-type": "application/x-ndjson"}
            ),
            "ndjson": await post(
                "open", b'{"n": 1}\n{"n": 2}\n{"n": 3}\n', {"content-type": "application/x-ndjson"}
            ),
            "unknown path": await post("nowhere", body, {"content-type": "application/json"}),
        }

    codes = {name: response.status_code for name, response in statuses.items()}
    assert codes == {
        "valid": 202,
        "replayed": 409,
        "wrong key": 403,
        "missing": 401,
        "stale": 403,
        "github": 202,
        "slack": 202,
        "bearer": 202,
        "bad bearer": 403,
        "too large": 413,
        "bad json": 422,
        "text": 415,
        "ndjson one bad line": 422,
        "ndjson": 202,
        "unknown path": 404,
    }
    assert [e["line"] for e in statuses["ndjson one bad line"].json()["errors"]] == [2]
    for name, response in statuses.items():
        if response.status_code != 202:
            assert response.json()["detail"], name
    assert len(accepted) == 7

    on_kafka = await read_envelopes(kafka_bootstrap, topics.ingest)
    assert sorted(e.id for e in on_kafka) == sorted(accepted)
    bodies = [e.data["body"] for e in on_kafka if e.data["path"] == "open"]
    assert sorted(json.dumps(b) for b in bodies) == sorted(json.dumps({"n": n}) for n in (1, 2, 3))
