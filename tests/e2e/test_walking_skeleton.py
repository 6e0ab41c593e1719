"""End to end through the real Kafka and PostgreSQL: webhook → approval → completion → audit."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from platform_kit import FakeHttp, Platform
from typer.testing import CliRunner, Result

from baton_cli.main import app
from baton_common import ids
from baton_common.commands import CancelRun
from baton_common.envelope import decode_record
from baton_common.kafka import make_consumer, make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.testing import eventually

pytestmark = pytest.mark.integration

ALICE = {"Authorization": "Bearer tok-alice"}
MALLORY = {"Authorization": "Bearer tok-mallory"}


def post_alert(platform: Platform, fake: FakeHttp, message: str) -> str:
    """POST the hello-approval webhook; return the run id it starts."""
    body = {
        "message": message,
        "lookup_url": f"{fake.url}/lookup",
        "notify_url": f"{fake.url}/notify",
    }
    response = httpx.post(f"{platform.url('ingest')}/webhooks/hello", json=body, timeout=30)
    assert response.status_code == 202, response.text
    ingest_id = response.json()["id"]
    return ids.run_id_for("hello-approval", f"ingest:{ingest_id}")


async def pending_gate(platform: Platform, run_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{platform.url('approvals')}/approvals", params={"state": "pending"}, headers=ALICE
            )
        response.raise_for_status()
        gates = [g for g in response.json()["items"] if g["run_id"] == run_id]
        return gates[0] if gates else None

    return await eventually(probe, within=60, what=f"a pending gate for run {run_id}")


async def run_view(platform: Platform, run_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{platform.url('audit')}/runs/{run_id}", headers=ALICE)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        view: dict[str, Any] = response.json()
        return view if view["run"]["status"] == status else None

    return await eventually(probe, within=60, what=f"run {run_id} {status} in audit")


def decide(
    platform: Platform, gate_id: str, decision: str, headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{platform.url('approvals')}/approvals/{gate_id}/decision",
        json={"decision": decision, "comment": "checked the lookup"},
        headers=headers,
        timeout=30,
    )


async def cli(platform: Platform, *args: str) -> Result:
    """Run the `baton` command as an operator would, against this platform."""
    env = {
        "BATON_APPROVALS_URL": platform.url("approvals"),
        "BATON_AUDIT_URL": platform.url("audit"),
        "BATON_TOKEN": "tok-alice",
    }
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def assert_ordered_and_caused(timeline: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1))
    for event in timeline:
        assert event["causationid"], f"{event['type']} names no command"
    for before, after in itertools.pairwise(timeline):
        assert after["prevhash"] == before["hash"]


async def test_webhook_to_approval_to_completion(platform: Platform, fake_http: FakeHttp) -> None:
    run_id = post_alert(platform, fake_http, "hello")
    gate = await pending_gate(platform, run_id)
    assert gate["message"] == "Send 'hello'? The lookup answered HTTP 200."
    (lookup,) = fake_http.calls_to("/lookup")
    assert lookup.method == "GET"
    assert lookup.headers["Idempotency-Key"] == ids.attempt_id(run_id, "lookup", 1)
    waiting = await run_view(platform, run_id, "waiting_approval")
    assert waiting["run"]["story_version"] == 1

    refused = decide(platform, gate["gate_id"], "approve", MALLORY)
    assert refused.status_code == 403, refused.text
    accepted = decide(platform, gate["gate_id"], "approve", ALICE)
    assert accepted.status_code == 202, accepted.text

    view = await run_view(platform, run_id, "succeeded")
    timeline = view["timeline"]
    assert [e["type"] for e in timeline] == [
        "baton.run.started.v1",
        "baton.step.dispatched.v1",
        "baton.step.succeeded.v1",
        "baton.approval.requested.v1",
        "baton.command.rejected.v1",  # mallory's 403 is on the record (ADR 0420)
        "baton.approval.granted.v1",
        "baton.step.dispatched.v1",
        "baton.step.succeeded.v1",
        "baton.run.succeeded.v1",
    ]
    assert_ordered_and_caused(timeline)
    assert timeline[4]["actor"] == "mallory"
    assert (
        timeline[4]["data"]["reason"] == f"refused by the api channel: {refused.json()['detail']}"
    )
    granted = timeline[5]
    assert granted["data"]["approver"] == "alice"
    assert granted["actor"] == "alice"
    assert granted["causationid"] == accepted.json()["command_id"]
    (notify,) = fake_http.calls_to("/notify")
    assert json.loads(notify.body) == {"message": "hello", "approved_by": "alice"}

    async def gate_closed() -> bool:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{platform.url('approvals')}/approvals/{gate['gate_id']}", headers=ALICE
            )
        return bool(response.json()["state"] == "approved")

    await eventually(gate_closed, what="the gate shown as approved")
    again = decide(platform, gate["gate_id"], "approve", ALICE)
    assert again.status_code == 409, again.text


async def test_run_waits_through_a_scheduler_kill(platform: Platform, fake_http: FakeHttp) -> None:
    run_id = post_alert(platform, fake_http, "survive")
    gate = await pending_gate(platform, run_id)
    scheduler = platform.services["scheduler"]
    scheduler.kill()
    scheduler.start()
    scheduler.wait_ready(within=90)

    view = await run_view(platform, run_id, "waiting_approval")
    assert view["timeline"][-1]["type"] == "baton.approval.requested.v1"
    approved = await cli(platform, "approvals", "approve", gate["gate_id"], "-m", "after restart")
    assert approved.exit_code == 0, approved.output
    assert f"approve recorded for gate {gate['gate_id']}" in approved.output

    view = await run_view(platform, run_id, "succeeded")
    shown = await cli(platform, "runs", "show", run_id)
    assert shown.exit_code == 0, shown.output
    assert "baton.approval.granted.v1 by alice" in shown.output
    assert f"run {run_id}  succeeded  hello-approval v1" in shown.output
    types = [e["type"] for e in view["timeline"]]
    assert types.count("baton.approval.granted.v1") == 1
    assert types.count("baton.run.started.v1") == 1
    assert_ordered_and_caused(view["timeline"])
    assert len(fake_http.calls_to("/notify")) == 1


async def test_malformed_webhook_bodies_get_a_reason(platform: Platform) -> None:
    url = f"{platform.url('ingest')}/webhooks/hello"
    async with httpx.AsyncClient() as client:
        not_json = await client.post(
            url, content=b"{oops", headers={"Content-Type": "application/json"}
        )
        wrong_type = await client.post(url, content=b"a=b", headers={"Content-Type": "text/plain"})
        unknown = await client.post(f"{platform.url('ingest')}/webhooks/nope", json={"a": 1})
    assert not_json.status_code == 422
    assert not_json.json()["detail"]
    assert wrong_type.status_code == 415
    assert unknown.status_code == 404


async def test_unparsable_command_goes_to_the_dlq_and_the_scheduler_goes_on(
    platform: Platform, topics: TopicSettings
) -> None:
    producer = make_producer(platform.bootstrap, client_id="e2e-test")
    await producer.start()
    marker = f"garbage-{uuid.uuid4()}"
    probe_run = str(uuid.uuid4())
    try:
        await producer.send_and_wait(topics.commands, marker.encode(), key=marker.encode())
        cancel = to_envelope(
            CancelRun(run_id=probe_run, reason="probe", requested_by="e2e"),
            id=str(uuid.uuid4()),
            source="e2e",
            time=datetime.now(UTC),
            subject=probe_run,
        )
        await outbound(topics.commands, probe_run, cancel).send(producer)
    finally:
        await producer.stop()

    letter = await _find(platform, topics.dlq, lambda e: e["data"].get("value") == marker)
    assert letter["data"]["consumer"] == "scheduler"
    assert "not a CloudEvent" in letter["data"]["reason"]
    rejected = await _find(
        platform,
        topics.runs,
        lambda e: e["subject"] == probe_run and e["type"].endswith("rejected.v1"),
    )
    assert rejected["data"]["reason"] == "unknown run"


async def _find(platform: Platform, topic: str, match: Any) -> dict[str, Any]:
    # group-less and subscribed: aiokafka assigns every partition of the topic
    consumer = make_consumer(platform.bootstrap, topic, group_id=None, client_id="e2e-reader")
    await consumer.start()
    try:
        seen: list[dict[str, Any]] = []

        async def probe() -> dict[str, Any] | None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    seen.append(decode_record(record.value, record.headers).model_dump(mode="json"))
            return next((e for e in seen if match(e)), None)

        return await eventually(probe, within=60, what=f"a matching record on {topic}")
    finally:
        await consumer.stop()
