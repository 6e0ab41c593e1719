"""SIGKILL the scheduler at random moments under load: no event is lost or duplicated."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict

import httpx
import pytest
from platform_kit import FakeHttp, Platform

from baton_common import ids
from baton_common.envelope import Envelope, decode_record
from baton_common.hashing import verify_chain
from baton_common.kafka import make_consumer, read_to_end
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually

pytestmark = pytest.mark.integration

CHAIN = """
id: crash-chain
version: 1
trigger:
  webhook: {path: crash-chain}
  dedup: {key: "{{ event.n }}", window: 1h}
steps:
  one: {action: http, with: {url: "{{ event.url }}/1"}}
  two: {needs: [one], action: http, with: {url: "{{ event.url }}/2"}}
  three: {needs: [one], action: http, with: {url: "{{ event.url }}/3"}}
  four: {needs: [two, three], action: http, with: {url: "{{ event.url }}/4"}}
"""
RUNS = 24
EXPECTED = [
    "run.started",
    "step.dispatched",
    "step.succeeded",
    "step.dispatched",
    "step.dispatched",
    "step.succeeded",
    "step.succeeded",
    "step.dispatched",
    "step.succeeded",
    "run.succeeded",
]


async def run_events(bootstrap: str, topic: str) -> dict[str, list[dict[str, object]]]:
    consumer = make_consumer(bootstrap, topic, group_id=None, client_id="crash-check")
    await consumer.start()
    runs: dict[str, list[dict[str, object]]] = defaultdict(list)
    try:
        async for record in read_to_end(consumer):
            envelope = decode_record(record.value, record.headers)
            if envelope.subject is not None and envelope.storyid == "crash-chain":
                runs[envelope.subject].append(envelope.model_dump())
    finally:
        await consumer.stop()
    return runs


def test_killing_the_scheduler_under_load_loses_and_duplicates_nothing(
    platform: Platform, topics: TopicSettings, fake_http: FakeHttp
) -> None:
    from baton_cli.kafka_ops import publish_stories

    asyncio.run(publish_stories(platform.bootstrap, topics, [(parse_story(CHAIN), CHAIN)]))
    seed = random.randrange(1_000_000)
    print(f"crash test seed {seed}")
    rng = random.Random(seed)
    run_ids = [ids.run_id_for("crash-chain", str(n)) for n in range(RUNS)]

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(RUNS):
                body = {"n": str(n), "url": f"{fake_http.url}/r{n}"}
                for _ in range(100):  # 404 until ingest has read the new story
                    response = client.post(
                        f"{platform.url('ingest')}/webhooks/crash-chain", json=body
                    )
                    if response.status_code == 202:
                        break
                    time.sleep(0.1)
                time.sleep(rng.uniform(0, 0.15))

    loader = threading.Thread(target=load)
    loader.start()
    scheduler = platform.services["scheduler"]
    for _ in range(3):  # SIGKILL at random moments while runs are in flight
        time.sleep(rng.uniform(0.5, 2.0))
        scheduler.kill()
        scheduler.start()
        scheduler.wait_ready()
    loader.join()

    async def all_finished() -> dict[str, list[dict[str, object]]] | None:
        runs = await run_events(platform.bootstrap, topics.runs)
        done = [r for r in run_ids if any(e["type"] == "baton.run.succeeded.v1" for e in runs[r])]
        return runs if len(done) == RUNS else None

    runs = asyncio.run(eventually(all_finished, within=120, what="every crash-chain run finished"))
    for run_id in run_ids:
        events = runs[run_id]
        kinds = [str(e["type"]).removeprefix("baton.").removesuffix(".v1") for e in events]
        assert kinds == EXPECTED, (run_id, kinds)  # nothing lost, nothing twice
        assert [e["seq"] for e in events] == list(range(1, len(EXPECTED) + 1))
        assert len({e["id"] for e in events}) == len(events)
        assert verify_chain([Envelope.model_validate(e) for e in events]) is None
