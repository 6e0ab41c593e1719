"""Gate semantics end to end (ADR 0410): scheduler, approvals and audit as processes on the
real Kafka and PostgreSQL, Slack as a local fake. Quorum with four-eyes, escalation after a
short timeout (with a reminder, then expiry), confidence gates both ways, and concurrent
approve + deny resolved in log order with both in the audit timeline.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from platform_kit import VIEWER, Platform, build_platform, topic_env
from tests.approvals.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

from baton_common.commands import StartRun
from baton_common.kafka import make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics

pytestmark = pytest.mark.integration

APPROVER = ["approver@secops"]
PEOPLE = {
    "tok-alice": {"user": "alice", "groups": ["secops-oncall"], "roles": APPROVER},
    "tok-bob": {"user": "bob", "groups": ["secops-oncall"], "roles": APPROVER},
    "tok-carol": {"user": "carol", "groups": ["secops-oncall"], "roles": APPROVER},
    "tok-dave": {"user": "dave", "groups": ["secops-oncall"], "roles": APPROVER},
    "tok-lee": {"user": "lee", "groups": ["secops-leads"], "roles": APPROVER},
}
STORIES = [
    """
id: quorum-e2e
version: 1
owner: group:secops
trigger: {webhook: {path: quorum-e2e}}
steps:
  review:
    approval:
      approvers: [group:secops-oncall]
      required: 2
      message: "Isolate {{ event.host }}?"
""",
    """
id: escalate-e2e
version: 1
trigger: {webhook: {path: escalate-e2e}}
steps:
  review:
    approval:
      approvers: [group:secops-oncall]
      timeout: 3s
      remind_before: 2s
      on_timeout: escalate
      escalate_to: [group:secops-leads]
      escalation_timeout: 3s
""",
    """
id: confidence-e2e
version: 1
trigger: {webhook: {path: confidence-e2e}}
steps:
  review:
    gate: {when: "event.confidence < 0.85"}
    approval:
      approvers: [group:secops-oncall]
      context:
        verdict: "{{ event.label }}"
        confidence: "{{ event.confidence }}"
        reasoning: "{{ event.reasoning }}"
""",
    """
id: race-e2e
version: 1
trigger: {webhook: {path: race-e2e}}
steps:
  review: {approval: {approvers: [group:secops-oncall]}}
""",
]


def _topics(namespace: str) -> TopicSettings:
    fields = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in topic_env(namespace).items()}
    return TopicSettings.model_validate(fields)


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({}) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    database_url: str,
    slack: FakeSlack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    from baton_cli.kafka_ops import publish_stories

    platform = build_platform(kafka_bootstrap, database_url, tmp_path_factory.mktemp("gate-logs"))
    topics = _topics(platform.namespace)
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    published = [(parse_story(text), text) for text in STORIES]
    asyncio.run(publish_stories(kafka_bootstrap, topics, published))
    platform.services["approvals"].env.update(
        {
            "BATON_AUTH__TOKENS": json.dumps(PEOPLE),
            "BATON_APPROVALS_SLACK__API_URL": slack.api_url,
            "BATON_APPROVALS_SLACK__BOT_TOKEN": BOT_TOKEN,
            "BATON_APPROVALS_SLACK__SIGNING_SECRET": SIGNING_SECRET,
            "BATON_APPROVALS_SLACK__CHANNEL": "#approvals",
            "BATON_APPROVALS_SLACK__CHANNELS": json.dumps({"group:secops-leads": "#leads"}),
            "BATON_APPROVALS_SLACK__POLL_SECONDS": "0.1",
        }
    )
    running = [platform.services[name] for name in ("scheduler", "approvals", "audit")]
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


async def start_run(stack: Platform, story: str, trigger: dict[str, Any], actor: str) -> str:
    """Append a StartRun whose envelope actor (the run's initiator) is ``actor``."""
    run_id = str(uuid.uuid4())
    command = StartRun(run_id=run_id, story_id=story, trigger=trigger)
    envelope = to_envelope(
        command,
        id=str(uuid.uuid4()),
        source="tests",
        time=datetime.now(UTC),
        subject=run_id,
        actor=actor,
    )
    producer = make_producer(stack.bootstrap, client_id="tests")
    await producer.start()
    try:
        await outbound(_topics(stack.namespace).commands, run_id, envelope).send(producer)
    finally:
        await producer.stop()
    return run_id


def who(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def gate_of(stack: Platform, run_id: str, state: str | None = "pending") -> dict[str, Any]:
    """The run's gate once it is in ``state`` (None: any state)."""

    async def probe() -> dict[str, Any] | None:
        params: dict[str, str | int] = {"limit": 500} | ({"state": state} if state else {})
        async with httpx.AsyncClient(base_url=stack.url("approvals")) as client:
            listed = await client.get("/approvals", params=params, headers=who("tok-alice"))
            found = [g for g in listed.json()["items"] if g["run_id"] == run_id]
            return found[0] if found else None

    return await eventually(probe, within=60, what=f"a {state} gate of run {run_id}")


async def decide(
    stack: Platform, gate_id: str, token: str, decision: str = "approve"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.url("approvals"), timeout=30) as client:
        return await client.post(
            f"/approvals/{gate_id}/decision",
            json={"decision": decision, "comment": f"{decision} from {token}"},
            headers=who(token),
        )


async def timeline_until(stack: Platform, run_id: str, wanted: str) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(base_url=stack.url("audit"), headers=VIEWER) as client:
            response = await client.get(f"/runs/{run_id}/timeline", timeout=10)
        if response.status_code != 200:
            return None
        items: list[dict[str, Any]] = response.json()["items"]
        return items if any(e["type"] == wanted for e in items) else None

    return await eventually(probe, within=60, what=f"{wanted} in run {run_id}")


def short(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["type"]).removeprefix("baton.").removesuffix(".v1") for e in events]


async def test_a_two_person_quorum_refuses_the_initiator_and_a_third_decision(
    stack: Platform,
) -> None:
    """Issue 6's quorum test: every refused attempt is a 409 (403 for a non-approver) and a
    CommandRejected with its reason in the audit timeline, in log order."""
    run_id = await start_run(stack, "quorum-e2e", {"host": "h1"}, actor="alice")
    gate = await gate_of(stack, run_id)
    gate_id = gate["gate_id"]
    assert (gate["required"], gate["excluded"]) == (2, ["alice"])

    initiator = await decide(stack, gate_id, "tok-alice")
    assert initiator.status_code == 409
    assert initiator.json()["detail"].startswith(f"four-eyes: alice cannot approve gate {gate_id}")
    outsider = await decide(stack, gate_id, "tok-lee")
    assert outsider.status_code == 403
    await timeline_until(stack, run_id, "baton.command.rejected.v1")

    assert (await decide(stack, gate_id, "tok-bob")).status_code == 202
    await timeline_until(stack, run_id, "baton.approval.vote-recorded.v1")
    assert (await gate_of(stack, run_id))["state"] == "pending"  # one of two
    repeat = await decide(stack, gate_id, "tok-bob")
    assert repeat.status_code == 409
    assert repeat.json()["detail"].startswith(f"bob already decided gate {gate_id}")
    assert (await decide(stack, gate_id, "tok-carol")).status_code == 202
    await timeline_until(stack, run_id, "baton.run.succeeded.v1")
    closed = await gate_of(stack, run_id, "approved")
    assert closed["decided_by"] == "carol"
    third = await decide(stack, gate_id, "tok-dave")
    assert third.status_code == 409
    assert third.json()["detail"] == f"gate {gate_id} is approved"

    async def all_four_refusals() -> list[dict[str, Any]] | None:
        events = await timeline_until(stack, run_id, "baton.run.succeeded.v1")
        rejected = [e for e in events if e["type"] == "baton.command.rejected.v1"]
        return events if len(rejected) == 4 else None

    events = await eventually(all_four_refusals, within=60, what="four refusals in the timeline")
    assert short(events) == [
        "run.started",
        "approval.requested",
        "command.rejected",  # alice: four-eyes
        "command.rejected",  # lee: not an approver
        "approval.vote-recorded",  # bob
        "command.rejected",  # bob again
        "approval.granted",  # carol completes the quorum
        "run.succeeded",
        "command.rejected",  # dave, after the gate closed
    ]
    assert events[6]["data"]["approvals"] == ["bob", "carol"]
    refusals = [
        (e["actor"], e["data"]["reason"])
        for e in events
        if e["type"] == "baton.command.rejected.v1"
    ]
    answers = [
        (a, r.json()["detail"])
        for a, r in zip(
            ["alice", "lee", "bob", "dave"], [initiator, outsider, repeat, third], strict=True
        )
    ]
    assert refusals == [(who, f"refused by the api channel: {why}") for who, why in answers]


async def test_a_short_deadline_reminds_escalates_once_then_expires(
    stack: Platform, slack: FakeSlack
) -> None:
    run_id = await start_run(stack, "escalate-e2e", {}, actor="ingest")
    gate = await gate_of(stack, run_id)
    gate_id = gate["gate_id"]
    events = await timeline_until(stack, run_id, "baton.approval.escalated.v1")
    [escalated] = [e for e in events if e["type"] == "baton.approval.escalated.v1"]
    assert escalated["data"]["escalated_to"] == ["group:secops-leads"]

    async def second_round() -> dict[str, Any] | None:
        found = await gate_of(stack, run_id, None)
        return found if found["round"] == 2 else None

    reopened = await eventually(second_round, within=60, what="the re-opened gate")
    assert reopened["state"] in {"pending", "expired"}
    assert reopened["approvers"] == ["group:secops-leads", "group:secops-oncall"]

    events = await timeline_until(stack, run_id, "baton.run.failed.v1")
    assert short(events) == [
        "run.started",
        "approval.requested",
        "timer.scheduled",
        "timer.scheduled",
        "timer.fired",
        "approval.reminded",
        "timer.fired",
        "approval.escalated",
        "timer.scheduled",
        "timer.scheduled",
        "timer.fired",
        "approval.reminded",
        "timer.fired",
        "approval.denied",
        "run.failed",
    ]
    assert events[-2]["data"]["approver"] == "baton/timeout"
    expired = await gate_of(stack, run_id, "expired")
    assert expired["decided_by"] == "baton/timeout"
    async with httpx.AsyncClient(base_url=stack.url("audit"), headers=VIEWER) as client:
        run = (await client.get(f"/runs/{run_id}", timeout=10)).json()
    [audited] = run["approvals"]
    assert audited["approvers"] == ["group:secops-leads", "group:secops-oncall"]
    assert (audited["decision"], audited["approver"]) == ("denied", "baton/timeout")
    late = await decide(stack, gate_id, "tok-lee")
    assert (late.status_code, late.json()["detail"]) == (409, f"gate {gate_id} is expired")

    async def slack_done() -> list[Any] | None:
        posts = [c for c in slack.calls_of("chat.postMessage") if _about(c.args, gate_id)]
        reminders = [c for c in slack.calls_of("chat.postMessage") if "thread_ts" in c.args]
        return posts if len(posts) == 2 and reminders else None

    posts = await eventually(slack_done, within=30, what="both rounds posted to Slack")
    assert [p.args["channel"] for p in posts] == ["#approvals", "#leads"]


def _about(args: dict[str, Any], gate_id: str) -> bool:
    return gate_id in json.dumps(args.get("blocks", []))


async def test_a_confidence_gate_asks_only_when_the_condition_holds(stack: Platform) -> None:
    sure = await start_run(
        stack, "confidence-e2e", {"label": "malicious", "confidence": 0.97, "reasoning": "c2"}, "x"
    )
    unsure = await start_run(
        stack, "confidence-e2e", {"label": "malicious", "confidence": 0.6, "reasoning": "odd"}, "x"
    )
    events = await timeline_until(stack, sure, "baton.run.succeeded.v1")
    assert short(events) == ["run.started", "approval.not-needed", "run.succeeded"]
    assert events[1]["data"]["reason"] == "gate condition is false: event.confidence < 0.85"

    gate = await gate_of(stack, unsure)
    assert gate["context"] == {"verdict": "malicious", "confidence": 0.6, "reasoning": "odd"}
    assert (await decide(stack, gate["gate_id"], "tok-bob")).status_code == 202
    events = await timeline_until(stack, unsure, "baton.run.succeeded.v1")
    assert short(events) == [
        "run.started",
        "approval.requested",
        "approval.granted",
        "run.succeeded",
    ]


async def test_concurrent_approve_and_deny_resolve_in_log_order(stack: Platform) -> None:
    run_id = await start_run(stack, "race-e2e", {}, actor="ingest")
    gate = await gate_of(stack, run_id)
    approve, deny = await asyncio.gather(
        decide(stack, gate["gate_id"], "tok-bob", "approve"),
        decide(stack, gate["gate_id"], "tok-carol", "deny"),
    )
    assert (approve.status_code, deny.status_code) == (202, 202)
    ids = {approve.json()["command_id"]: "approve", deny.json()["command_id"]: "deny"}
    events = await timeline_until(stack, run_id, "baton.command.rejected.v1")
    decided = [
        e for e in events if e["type"] in {"baton.approval.granted.v1", "baton.approval.denied.v1"}
    ]
    [rejected] = [e for e in events if e["type"] == "baton.command.rejected.v1"]
    assert len(decided) == 1
    winner, loser = decided[0]["causationid"], rejected["data"]["command_id"]
    assert {winner, loser} == set(ids)  # both decisions are in the audit timeline
    assert events.index(decided[0]) < events.index(rejected)  # the first in the log won
    state = "approved" if ids[winner] == "approve" else "denied"
    assert (await gate_of(stack, run_id, state))["gate_id"] == gate["gate_id"]
