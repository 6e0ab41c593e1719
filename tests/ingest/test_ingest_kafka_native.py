"""Kafka-native intake on the real Kafka: the documented record formats, the dead-letter
topic, and exact dedup at volume with two router processes and the real scheduler."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from platform_kit import Service

from baton_common import ids
from baton_common.envelope import decode_record
from baton_common.kafka import make_producer
from baton_common.records import DeadLetter
from baton_common.testing import eventually

from .kit import new_namespace, prepare, read_all, read_envelopes, service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EDR = """
id: edr
version: 1
trigger:
  webhook: {path: edr-alerts, http: false}
  when: event.severity == "high"
  dedup: {key: "{{ event.alert_id }}", window: 1h}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""


def started(svc: Service) -> Service:
    svc.start()
    svc.wait_ready()
    return svc


async def test_every_documented_format_is_routed_and_bad_records_are_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    namespace = new_namespace()
    topics = await prepare(kafka_bootstrap, namespace, [EDR])
    ingest = started(service("ingest", kafka_bootstrap, namespace, tmp_path))
    try:
        for fmt in ("binary", "structured", "raw"):
            alerts = "".join(
                json.dumps({"alert_id": f"{fmt}-{n}", "severity": "high"}) + "\n" for n in range(3)
            )
            alerts += json.dumps({"alert_id": f"{fmt}-low", "severity": "low"}) + "\n"
            await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    str(ROOT / "examples/kafka_producer.py"),
                    f"--bootstrap={kafka_bootstrap}",
                    f"--topic={topics.ingest}",
                    "--source=edr-alerts",
                    f"--format={fmt}",
                ],
                input=alerts.encode(),
                check=True,
                timeout=60,
            )
        producer = make_producer(kafka_bootstrap, client_id="test-bad-records")
        await producer.start()
        try:
            await producer.send_and_wait(topics.ingest, b"not json", key=b"k")
            await producer.send_and_wait(topics.ingest, b"[1]", headers=[("source", b"edr-alerts")])
            await producer.send_and_wait(
                topics.ingest,
                json.dumps({"specversion": "1.0", "source": "edr-alerts", "data": {}}).encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
        finally:
            await producer.stop()

        async def commands() -> list[str] | None:
            envelopes = await read_envelopes(kafka_bootstrap, topics.commands)
            return [e.subject or "" for e in envelopes] if len(envelopes) >= 9 else None

        subjects = await eventually(commands, within=60, interval=0.5, what="9 StartRun")

        async def letters() -> list[DeadLetter] | None:
            found = [
                DeadLetter.model_validate(decode_record(r.value, r.headers).data)
                for r in await read_all(kafka_bootstrap, topics.dlq)
            ]
            return found if len(found) >= 3 else None

        dead = await eventually(letters, within=60, interval=0.5, what="3 dead letters")
    finally:
        ingest.stop()

    expected = {
        ids.run_id_for("edr", f"{fmt}-{n}")
        for fmt in ("binary", "structured", "raw")
        for n in range(3)
    }
    assert sorted(subjects) == sorted(expected)
    reasons = sorted(d.reason for d in dead)
    assert any("neither a CloudEvent" in r for r in reasons), reasons
    assert any("must be a JSON object" in r for r in reasons), reasons
    assert any("lacks id, type" in r for r in reasons), reasons
    assert {d.topic for d in dead} == {topics.ingest}


def routed(svc: Service) -> float:
    text = httpx.get(f"{svc.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("baton_ingest_routed_total{")
    )


@pytest.mark.timeout(300)
async def test_ten_thousand_events_with_thirty_percent_duplicates_start_exactly_seven_thousand_runs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    namespace = new_namespace()
    topics = await prepare(kafka_bootstrap, namespace, [EDR])
    quiet = {"BATON_LOG_LEVEL": "WARNING"}
    routers = [
        service("ingest", kafka_bootstrap, namespace, tmp_path, quiet, label=f"ingest-{n}")
        for n in range(2)
    ]
    scheduler = service("scheduler", kafka_bootstrap, namespace, tmp_path, quiet)
    processes = [*routers, scheduler]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        # 7,000 distinct alerts, then 3,000 repeats of some of them, shuffled; record keys
        # spread duplicates of one alert over both partitions, hence over both routers.
        keys = [f"alert-{n}" for n in range(7000)] + [f"alert-{n * 7 % 7000}" for n in range(3000)]
        random.Random(4).shuffle(keys)
        assert len(set(keys)) == 7000
        producer = make_producer(kafka_bootstrap, client_id="test-volume")
        await producer.start()
        try:
            sends = [
                await producer.send(
                    topics.ingest,
                    json.dumps({"alert_id": key, "severity": "high"}).encode(),
                    key=str(n).encode(),
                    headers=[("source", b"edr-alerts")],
                )
                for n, key in enumerate(keys)
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

        async def all_decided() -> Counter[str] | None:
            counts = Counter(
                dict(r.headers).get("ce_type", b"").decode()
                for r in await read_all(kafka_bootstrap, topics.runs)
            )
            decided = counts["baton.run.started.v1"] + counts["baton.run.deduplicated.v1"]
            return counts if decided >= 10_000 else None

        counts = await eventually(all_decided, within=240, interval=2, what="10,000 decisions")
        assert all(routed(r) > 0 for r in routers), "both routers took part"
    finally:
        for process in processes:
            process.stop()
            print(process.tail(10))

    assert counts["baton.run.started.v1"] == 7000
    assert counts["baton.run.deduplicated.v1"] == 3000
