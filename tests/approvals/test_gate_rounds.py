"""Gate outcomes and rounds decided by the scheduler (ADR 0410), as the approvals service
keeps them: expired and escalated gates, re-opened gates, reminders, per-gate rules.

PostgreSQL is real; Slack is the fake speaking the Web API; Kafka is the fake publisher.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from baton_approvals.consumer import Projector
from baton_approvals.db import Pool, create_pool
from baton_approvals.gates import CloseGate, GateState, OpenGate, RemindGate, gate_change
from baton_approvals.main import create_app
from baton_approvals.settings import ApprovalsSettings, SlackSettings
from baton_approvals.store import GateStore
from baton_common.envelope import Envelope
from baton_common.kafka import to_envelope
from baton_common.records import GateOpened, GateReminder
from baton_common.testing import eventually

from .fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from .fakes import T0, TOPIC, FakePublisher, closed, inbox_projector, record_of

DEADLINE = T0 + timedelta(hours=1)


def opened(round: int = 1, **fields: object) -> Envelope:
    payload = GateOpened.model_validate(
        {
            "run_id": "r1",
            "story_id": "phishing-triage",
            "story_version": 4,
            "step": "review",
            "gate_id": "g1",
            "approvers": ["group:secops-oncall"],
            "message": "contain the host?",
            "required": 2,
            "excluded": ["ivan"],
            "context": {"verdict": "malicious", "confidence": 0.62},
            "deadline": DEADLINE.isoformat(),
            "require_comment_on_deny": True,
            "round": round,
            **fields,
        }
    )
    return to_envelope(
        payload, id=f"open-g1-{round}", source="baton/scheduler", time=T0, subject="r1"
    )


def reminder() -> Envelope:
    payload = GateReminder(
        run_id="r1", gate_id="g1", approvers=["group:secops-oncall"], deadline=DEADLINE
    )
    return to_envelope(payload, id="remind-g1", source="baton/scheduler", time=T0, subject="r1")


def test_the_new_records_and_outcomes_map_to_inbox_changes() -> None:
    change = gate_change(opened())
    assert isinstance(change, OpenGate)
    assert (change.required, change.excluded, change.deadline, change.round) == (
        2,
        ("ivan",),
        DEADLINE,
        1,
    )
    assert change.context == {"verdict": "malicious", "confidence": 0.62}
    assert gate_change(reminder()) == RemindGate("g1", ["group:secops-oncall"], DEADLINE)
    for outcome in ("expired", "escalated"):
        closing = gate_change(closed("g1", outcome=outcome))
        assert isinstance(closing, CloseGate)
        assert closing.state is GateState(outcome)


pytestmark = pytest.mark.integration


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack({}) as fake:
        yield fake


@pytest.fixture
async def app(
    settings: ApprovalsSettings, publisher: FakePublisher, slack: FakeSlack
) -> AsyncIterator[FastAPI]:
    chat = SlackSettings.model_validate(
        {
            "api_url": slack.api_url,
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "channel": "#approvals",
            "channels": {"group:secops-oncall": "#secops", "group:secops-leads": "#leads"},
            "poll_seconds": 0.05,
        }
    )
    configured = settings.model_copy(update={"slack": chat})
    app = create_app(configured, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def projector(app: FastAPI, settings: ApprovalsSettings) -> AsyncIterator[Projector]:
    pool: Pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
    try:
        yield inbox_projector(pool)
    finally:
        await pool.close()


async def test_escalation_reopens_the_gate_supersedes_its_message_and_reminds(
    slack: FakeSlack, projector: Projector, settings: ApprovalsSettings
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened(), 0)])

    async def first() -> bool:
        return len(slack.calls_of("chat.postMessage")) == 1

    await eventually(first, within=15, what="the gate's first message")
    [post] = slack.calls_of("chat.postMessage")
    shown = json.dumps(post.args["blocks"])
    assert post.args["channel"] == "#secops"
    assert "*verdict*: malicious" in shown
    assert "*confidence*: 0.62" in shown
    assert "2 approvals needed" in shown
    assert "cannot approve: ivan" in shown
    first_ts = slack.message_for("g1")
    assert first_ts is not None

    widened = ["group:secops-leads", "group:secops-oncall"]
    escalation = [
        record_of(closed("g1", run_id="r1", outcome="escalated", approver=None), 1),
        record_of(opened(2, approvers=widened, escalated_to=["group:secops-leads"]), 2),
        record_of(opened(1), 3),  # a redelivered first round changes nothing
        record_of(reminder(), 4),
    ]
    await projector.apply_batch(TOPIC, 0, escalation)

    pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=1)
    try:
        gate = await GateStore(pool).get("g1")
    finally:
        await pool.close()
    assert gate is not None
    assert (gate.state, gate.approvers, gate.round) == (GateState.PENDING, widened, 2)

    async def settled() -> bool:
        posts = slack.calls_of("chat.postMessage")
        return len(posts) == 3 and bool(slack.calls_of("chat.update"))

    await eventually(settled, within=15, what="a new message, a reminder and an update")
    second, remind = slack.calls_of("chat.postMessage")[1:]
    assert second.args["channel"] == "#leads"  # the escalation group's channel
    assert "escalated" in json.dumps(second.args["blocks"])
    [update] = slack.calls_of("chat.update")
    assert update.args["ts"] == first_ts.ts
    assert "Escalated to group:secops-leads" in update.args["text"]
    assert "thread_ts" in remind.args
    assert remind.args["text"].startswith("Reminder: this approval is still waiting")
    assert "2025-03-01 13:00:00 UTC" in remind.args["text"]


async def test_an_expired_gate_shows_it_and_a_late_reminder_is_dropped(
    slack: FakeSlack, projector: Projector
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened(), 0)])
    await eventually(lambda: _true(slack.message_for("g1") is not None), within=15, what="message")
    expired = closed("g1", run_id="r1", outcome="expired", approver="baton/timeout")
    await projector.apply_batch(TOPIC, 0, [record_of(expired, 1), record_of(reminder(), 2)])

    async def updated() -> bool:
        return bool(slack.calls_of("chat.update"))

    await eventually(updated, within=15, what="chat.update")
    assert "Expired (denied at its deadline) by baton/timeout" in json.dumps(
        slack.calls_of("chat.update")[0].args["blocks"]
    )
    assert len(slack.calls_of("chat.postMessage")) == 1  # no reminder for a closed gate


async def _true(value: bool) -> bool:
    return value


async def test_a_gate_that_requires_a_deny_comment_refuses_one_without(
    app: FastAPI, projector: Projector
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened(), 0)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approvals") as client:
        bare = await client.post(
            "/approvals/g1/decision",
            headers={"Authorization": "Bearer t-alice"},
            json={"decision": "deny"},
        )
        assert bare.status_code == 422
        assert bare.json()["detail"] == "a comment is required to deny a gate"
        listed = await client.get(
            "/approvals", params={"state": "pending"}, headers={"Authorization": "Bearer t-alice"}
        )
        await client.post(
            "/inbox/login",
            content="token=t-alice",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        page = (await client.get("/inbox")).text
    assert "<dt>verdict</dt><dd>malicious</dd>" in page
    assert "2 approvals needed · cannot approve: ivan · due 2025-03-01 13:00:00 UTC" in page
    [gate] = listed.json()["items"]
    assert gate["required"] == 2
    assert gate["context"] == {"verdict": "malicious", "confidence": 0.62}
    assert gate["require_comment_on_deny"] is True
