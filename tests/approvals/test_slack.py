"""Slack: messages posted and updated by the notifier, button presses verified and decided.

The app runs in-process against a real PostgreSQL and a fake Slack speaking the Web API
over HTTP; Kafka is the fake publisher here (the end-to-end test uses the real one).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from baton_approvals.consumer import Projector
from baton_approvals.db import Pool, create_pool
from baton_approvals.main import create_app
from baton_approvals.settings import ApprovalsSettings, SlackSettings
from baton_approvals.slack_messages import APPROVE, DENY
from baton_common.testing import eventually

from .fake_slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    Message,
    button_press,
    modal_submission,
)
from .fakes import (
    TOPIC,
    FakePublisher,
    closed,
    inbox_projector,
    opened,
    project_gates,
    record_of,
)

pytestmark = pytest.mark.integration

EMAILS = {"U_ALICE": "alice@example.test", "U_BOB": "bob@example.test"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(EMAILS) as fake:
        yield fake


def slack_settings(fake: FakeSlack) -> SlackSettings:
    return SlackSettings.model_validate(
        {
            "api_url": fake.api_url,
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "channel": "#approvals",
            "channels": {"group:secops-oncall": "#secops"},
            "users": {"U_CAROL": "carol"},
            "groups": {"alice@example.test": ["secops-oncall"]},
            "poll_seconds": 0.05,
        }
    )


@pytest.fixture
async def app(
    settings: ApprovalsSettings, publisher: FakePublisher, slack: FakeSlack
) -> AsyncIterator[FastAPI]:
    configured = settings.model_copy(update={"slack": slack_settings(slack)})
    app = create_app(configured, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approvals") as client:
        yield client


@pytest.fixture
async def projector(app: FastAPI, settings: ApprovalsSettings) -> AsyncIterator[Projector]:
    pool: Pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
    try:
        yield inbox_projector(pool)
    finally:
        await pool.close()


async def posted(slack: FakeSlack, gate_id: str) -> Message:
    async def probe() -> Message | None:
        return slack.message_for(gate_id)

    return await eventually(probe, within=15, what=f"a Slack message for {gate_id}")


async def test_a_gate_is_posted_then_updated_with_who_decided_and_when(
    slack: FakeSlack, projector: Projector
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])

    message = await posted(slack, "g1")
    [post] = slack.calls_of("chat.postMessage")
    assert post.args["channel"] == "#secops"  # the channel of its approver group
    assert post.args["text"] == "Approval needed: phishing-triage / review"
    actions = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [APPROVE, DENY]
    assert {e["value"] for e in actions[0]["elements"]} == {"g1"}
    assert "contain the host?" in json.dumps(message.blocks)

    await projector.apply_batch(TOPIC, 0, [record_of(closed("g1", run_id="r1"), 1)])

    async def updated() -> bool:
        return bool(slack.calls_of("chat.update"))

    await eventually(updated, within=15, what="chat.update")
    [update] = slack.calls_of("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (message.channel, message.ts)
    shown = json.dumps(update.args["blocks"])
    assert "Approved by alice at 2025-03-01 12:00:00 UTC" in shown
    assert '"actions"' not in shown  # the buttons are gone
    assert len(slack.calls_of("chat.postMessage")) == 1


async def test_a_failed_post_is_retried(slack: FakeSlack, projector: Projector) -> None:
    slack.fail_next = ["ratelimited"]

    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])

    await posted(slack, "g1")
    assert len(slack.calls_of("chat.postMessage")) == 2


async def test_a_genuine_press_becomes_decide_approval_from_slack(
    client: httpx.AsyncClient, slack: FakeSlack, projector: Projector, publisher: FakePublisher
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")
    body, headers = button_press(message, user="U_ALICE", action=APPROVE)

    response = await client.post("/slack/interactions", content=body, headers=headers)

    assert response.status_code == 200
    assert response.json()["ok"] is True
    [envelope] = publisher.envelopes("baton.commands")
    assert envelope.data["approver"] == "alice@example.test"  # from users.info
    assert envelope.data["approver_groups"] == ["secops-oncall"]
    assert (envelope.data["decision"], envelope.data["channel"]) == ("approve", "slack")
    assert envelope.id == response.json()["command_id"]


async def test_forged_stale_and_replayed_callbacks_are_refused(
    client: httpx.AsyncClient, slack: FakeSlack, projector: Projector, publisher: FakePublisher
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")

    forged_body, forged = button_press(message, user="U_ALICE", action=APPROVE, secret="guess")
    stale_body, stale = button_press(message, user="U_ALICE", action=APPROVE, at=time.time() - 301)
    body, headers = button_press(message, user="U_ALICE", action=APPROVE)
    tampered = body.replace(b"U_ALICE", b"U_CAROL")
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}

    answers = {
        "forged": await client.post("/slack/interactions", content=forged_body, headers=forged),
        "stale": await client.post("/slack/interactions", content=stale_body, headers=stale),
        "tampered": await client.post("/slack/interactions", content=tampered, headers=headers),
        "unsigned": await client.post("/slack/interactions", content=body, headers=unsigned),
        "genuine": await client.post("/slack/interactions", content=body, headers=headers),
        "replayed": await client.post("/slack/interactions", content=body, headers=headers),
    }

    assert {k: r.status_code for k, r in answers.items()} == {
        "forged": 401,
        "stale": 401,
        "tampered": 401,
        "unsigned": 401,
        "genuine": 200,
        "replayed": 401,
    }
    assert answers["forged"].json()["detail"] == "not from Slack: signature mismatch"
    assert answers["stale"].json()["detail"].startswith("not from Slack: stale request")
    assert answers["replayed"].json()["detail"] == "not from Slack: replayed request"
    assert len(publisher.envelopes("baton.commands")) == 1
    metrics = (await client.get("/metrics")).text
    for outcome in ("forged", "replayed", "decided"):
        assert f'baton_approvals_slack_callbacks_total{{outcome="{outcome}"}}' in metrics
    assert 'baton_approvals_decisions_total{channel="slack",outcome="accepted"}' in metrics


async def test_a_mapped_slack_user_needs_no_lookup(
    client: httpx.AsyncClient, slack: FakeSlack, projector: Projector, publisher: FakePublisher
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")
    body, headers = button_press(message, user="U_CAROL", action=APPROVE)

    response = await client.post("/slack/interactions", content=body, headers=headers)

    assert response.json()["ok"] is True
    [envelope] = publisher.envelopes("baton.commands")
    assert (envelope.data["approver"], envelope.data["decision"]) == ("carol", "approve")
    assert slack.calls_of("users.info") == []


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ("U_BOB", "bob@example.test is not an approver of gate g1"),
        ("U_NOBODY", "cannot look up Slack user U_NOBODY: users.info: user_not_found"),
    ],
)
async def test_an_ineligible_press_is_refused_and_the_user_told(
    client: httpx.AsyncClient,
    slack: FakeSlack,
    projector: Projector,
    publisher: FakePublisher,
    user: str,
    reason: str,
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")
    body, headers = button_press(message, user=user, action=APPROVE)

    response = await client.post("/slack/interactions", content=body, headers=headers)

    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["reason"].startswith(reason)
    [told] = slack.calls_of("chat.postEphemeral")
    assert told.args["user"] == user
    if user == "U_BOB":  # refused by the service: on the record, marked refused
        assert told.args["text"].startswith(f"Refused (kept in the run's history): {reason}")
        [refused] = publisher.envelopes("baton.commands")
        assert str(refused.data["refused"]).startswith(reason)
    else:  # nobody to record it for
        assert told.args["text"].startswith(f"Not recorded: {reason}")
        assert publisher.records == []


async def test_a_second_press_by_the_same_person_is_refused(
    client: httpx.AsyncClient, slack: FakeSlack, projector: Projector, publisher: FakePublisher
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")
    first = button_press(message, user="U_CAROL", action=APPROVE)
    second = button_press(message, user="U_CAROL", action=APPROVE)

    await client.post("/slack/interactions", content=first[0], headers=first[1])
    response = await client.post("/slack/interactions", content=second[0], headers=second[1])

    assert response.json()["reason"].startswith("carol already decided gate g1 (approve via slack")
    [first_decision, second_refused] = publisher.envelopes("baton.commands")
    assert first_decision.data["refused"] is None
    assert second_refused.data["refused"] == response.json()["reason"]


async def test_a_bad_payload_is_400(client: httpx.AsyncClient) -> None:
    from .fake_slack import signed_headers

    for body in [
        b"payload=not-json",
        b"nothing=here",
        b"payload=%7B%22type%22%3A%22block_actions%22%7D",
    ]:
        response = await client.post(
            "/slack/interactions", content=body, headers=signed_headers(body)
        )
        assert response.status_code == 400, body


def test_slack_is_off_without_its_secrets(settings: ApprovalsSettings) -> None:
    paths = create_app(settings, publisher=FakePublisher(), consume=False).openapi()["paths"]
    assert "/slack/interactions" not in paths


async def test_deny_asks_why_in_a_modal_then_decides_with_the_comment(
    client: httpx.AsyncClient, slack: FakeSlack, projector: Projector, publisher: FakePublisher
) -> None:
    await projector.apply_batch(TOPIC, 0, [record_of(opened("g1", run_id="r1"), 0)])
    message = await posted(slack, "g1")
    body, headers = button_press(message, user="U_CAROL", action=DENY)

    pressed = await client.post("/slack/interactions", content=body, headers=headers)

    assert pressed.json() == {"ok": True, "modal": "opened"}
    assert publisher.records == []  # nothing decided until the modal is submitted
    [opened_view] = slack.calls_of("views.open")
    assert opened_view.args["trigger_id"] == "1.2.3"
    [view] = slack.views
    assert view["callback_id"] == "baton_deny"
    comment_block = next(b for b in view["blocks"] if b["type"] == "input")
    assert comment_block["optional"] is True

    body, headers = modal_submission(view, user="U_CAROL", comment="not this host")
    submitted = await client.post("/slack/interactions", content=body, headers=headers)

    assert (submitted.status_code, submitted.content) == (200, b"")  # closes the modal
    [envelope] = publisher.envelopes("baton.commands")
    assert (envelope.data["approver"], envelope.data["decision"]) == ("carol", "deny")
    assert (envelope.data["comment"], envelope.data["channel"]) == ("not this host", "slack")


async def test_a_required_comment_is_asked_for_in_the_modal(
    settings: ApprovalsSettings, publisher: FakePublisher, slack: FakeSlack
) -> None:
    strict = settings.model_copy(
        update={"slack": slack_settings(slack), "deny_requires_comment": True}
    )
    app = create_app(strict, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        await project_gates(strict, [opened("g1", run_id="r1")])
        message = await posted(slack, "g1")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            body, headers = button_press(message, user="U_CAROL", action=DENY)
            await client.post("/slack/interactions", content=body, headers=headers)
            [view] = slack.views
            body, headers = modal_submission(view, user="U_CAROL", comment=None)
            answer = await client.post("/slack/interactions", content=body, headers=headers)

    assert next(b for b in view["blocks"] if b["type"] == "input")["optional"] is False
    assert answer.json() == {
        "response_action": "errors",
        "errors": {"baton_comment": "Not recorded: a comment is required to deny a gate"},
    }
    assert publisher.records == []
