"""The local world's systems on their own (in-process ASGI, no Kafka): idempotency, recording,
scripted verdicts, and signatures the real ingest and approvals code accept."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton_approvals.slack_signature import verify as verify_slack
from baton_cli.world import parse_rate, parse_share
from baton_common.story import parse_story
from baton_ingest.signature import SignatureCheck, verify_signature
from baton_world.edr import signature_headers
from baton_world.main import create_app
from baton_world.settings import WorldSettings
from baton_world.slack import signed

SETTINGS = WorldSettings()
IDP = {"Authorization": f"SSWS {SETTINGS.idp_token}"}


@pytest.fixture
async def world() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://world"
    ) as client:
        yield client


async def calls(world: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await world.get("/_calls", params=query)).json()["calls"]
    return found


async def test_a_repeated_suspend_with_the_same_key_changes_nothing(
    world: httpx.AsyncClient,
) -> None:
    url = "/idp/api/v1/users/dana@corp.example/lifecycle/suspend"
    first = await world.post(url, headers={**IDP, "Idempotency-Key": "attempt-1"})
    again = await world.post(url, headers={**IDP, "Idempotency-Key": "attempt-1"})
    other = await world.post(url, headers={**IDP, "Idempotency-Key": "attempt-2"})

    assert first.status_code == 200
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 400  # Okta: cannot suspend a user that is not active
    assert other.json()["errorCode"] == "E0000001"
    recorded = await calls(world, service="idp")
    assert [c["effect"].get("applied") for c in recorded] == [True, False, False]
    assert [c["idempotency_key"] for c in recorded] == ["attempt-1", "attempt-1", "attempt-2"]
    user = (await world.get("/idp/api/v1/users/dana@corp.example", headers=IDP)).json()
    assert user["status"] == "SUSPENDED"


async def test_the_idp_refuses_a_wrong_token_and_unknown_profile_fields(
    world: httpx.AsyncClient,
) -> None:
    wrong = await world.get("/idp/api/v1/users", headers={"Authorization": "SSWS nope"})
    groups = await world.post(
        "/idp/api/v1/users/grace@corp.example", json={"profile": {"groups": ["x"]}}, headers=IDP
    )

    assert wrong.status_code == 401
    assert groups.status_code == 400
    assert "unknown fields ['groups']" in groups.json()["errorSummary"]


async def test_a_case_is_opened_once_per_key(world: httpx.AsyncClient) -> None:
    body = {"title": "Phishing", "tags": ["a-1"]}
    first = await world.post("/cases/api/v1/cases", json=body, headers={"Idempotency-Key": "k"})
    again = await world.post("/cases/api/v1/cases", json=body, headers={"Idempotency-Key": "k"})

    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len((await world.get("/cases/api/v1/cases?tag=a-1")).json()["cases"]) == 1
    assert (await world.post("/cases/api/v1/cases", json={"tags": []})).status_code == 422


async def llm(world: httpx.AsyncClient, data: object) -> dict[str, object]:
    user = "Triage.\n\nInput (JSON):\n```json\n" + json.dumps(data, indent=2) + "\n```"
    schema = {"type": "object", "properties": {"fields": {}, "confidence": {}}}
    request = {
        "model": "m",
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": user}],
        "tools": [
            {"type": "function", "function": {"name": "record_answer", "parameters": schema}}
        ],
    }
    headers = {"Authorization": f"Bearer {SETTINGS.llm_api_key}"}
    answer = (await world.post("/llm/v1/chat/completions", json=request, headers=headers)).json()
    arguments: dict[str, object] = json.loads(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    )
    return arguments


async def test_verdicts_follow_the_enrichments_unless_scripted_for_an_alert(
    world: httpx.AsyncClient,
) -> None:
    bad = {"verdict": "malicious", "domain": "x.example"}
    suspicious = {"verdict": "suspicious", "domain": "y.example"}
    confident = {"alert": {"alert_id": "a-1"}, "url_reputation": bad, "sender_reputation": bad}
    unsure = {
        "alert": {"alert_id": "a-2"},
        "url_reputation": suspicious,
        "sender_reputation": suspicious,
        "email": {"clicked": True},
    }
    scripted = {"fields": {"verdict": "benign", "recommended_actions": []}, "confidence": 0.99}
    await world.post("/_llm/scripts", json={"match": "a-3", "answer": scripted})

    assert (await llm(world, confident))["confidence"] == 0.97
    answer = await llm(world, unsure)
    assert answer["confidence"] == 0.66
    assert answer["fields"] == {
        "verdict": "malicious",
        "recommended_actions": ["quarantine_email", "lock_account"],
    }
    assert await llm(world, {**unsure, "alert": {"alert_id": "a-3"}}) == scripted


def test_the_edr_signs_as_the_phishing_story_verifies() -> None:
    root = Path(__file__).resolve().parents[2]
    story = parse_story((root / "examples/stories/phishing-triage.yaml").read_text())
    spec = story.trigger.webhook.signature if story.trigger.webhook else None
    assert spec is not None
    body = b'{"alert_id": "a-1"}'
    headers = signature_headers(body, "k3y")
    check = verify_signature(
        body,
        headers[spec.header],
        key=b"k3y",
        prefix=spec.prefix,
        timestamp=headers[spec.timestamp_header or ""],
        spec=spec,
        now=datetime.now(UTC),
    )
    assert check is SignatureCheck.VALID


def test_slack_callbacks_are_signed_as_the_approvals_service_verifies() -> None:
    body = b"payload=%7B%7D"
    headers = signed(body, "s3cret")
    verify_slack(
        "s3cret",
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
        body=body,
        now=time.time(),
        window_seconds=300,
    )


def test_the_cli_reads_rates_and_shares() -> None:
    assert parse_rate("20/s") == 20
    assert parse_rate("600/m") == 10
    assert parse_share("10%") == pytest.approx(0.1)
    assert parse_share("0.25") == 0.25
