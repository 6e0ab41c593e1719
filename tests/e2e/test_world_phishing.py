"""phishing-triage end to end: the EDR console of the local world sends signed alerts to the
five services (processes, real Kafka and PostgreSQL); the assertions read what the world
recorded (what Baton did to the outside systems) and the audit service's timeline and export.

One platform and one world serve the whole module; each test uses its own user and alert.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from platform_kit import VIEWER
from world_kit import (
    WorldStack,
    decide,
    events_of,
    pending_gate,
    recorded,
    run_reaches,
    run_view,
    send_alert,
    step_outcomes,
    world_call,
    world_stack,
)

from baton_common import ids
from baton_common.testing import eventually

pytestmark = pytest.mark.integration

STORY = "phishing-triage"


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorldStack]:
    log_dir = tmp_path_factory.mktemp("world-phishing-logs")
    with world_stack(kafka_bootstrap, database_url, log_dir, [STORY]) as stack:
        yield stack


def fresh_user() -> str:
    return f"u{uuid.uuid4().hex[:10]}@corp.example"


async def test_a_confident_verdict_contains_at_once_and_a_duplicate_starts_nothing(
    stack: WorldStack,
) -> None:
    user = fresh_user()
    sent = await send_alert(stack, "confident", user)
    alert_id = sent["alert_id"]
    run_id = ids.run_id_for(STORY, alert_id)
    again = await world_call(stack, "POST", f"/_edr/alerts/{alert_id}/redeliver")
    assert again["status"] == 202  # a new delivery id: a valid, different signature

    view = await run_reaches(stack, run_id, ("succeeded", "failed"))
    assert view["run"]["status"] == "succeeded"
    outcomes = step_outcomes(view)
    assert outcomes["contain"] == "succeeded"
    assert outcomes["route_to_engineer"] == "skipped"
    assert outcomes["lockout_approval"] == "skipped"
    assert outcomes["open_case"] == "succeeded"
    for enrichment in ("url_reputation", "sender_reputation", "user_risk", "email_metadata"):
        assert outcomes[enrichment] == "succeeded"
    verdict = events_of(view, "baton.step.succeeded.v1")
    [ai] = [e["data"]["output"] for e in verdict if e["data"]["step"] == "verdict"]
    assert ai["fields"] == {
        "verdict": "malicious",
        "recommended_actions": ["quarantine_email", "block_sender"],
    }
    assert ai["confidence"] == 0.97

    # The duplicate delivery was folded into the run (its StartRun may be decided after
    # the run ended): one verdict, one quarantine.
    async def deduplicated() -> list[dict[str, object]] | None:
        later = await run_view(stack, run_id)
        found = events_of(later, "baton.run.deduplicated.v1") if later else []
        return found or None

    assert len(await eventually(deduplicated, within=60, what="RunDeduplicated")) == 1
    llm = [c for c in await recorded(stack, "llm") if alert_id in json.dumps(c["body"])]
    assert len(llm) == 1
    message_id = sent["alert"]["email"]["message_id"]
    [quarantine] = await recorded(stack, "email", f"/{message_id}/quarantine")
    assert quarantine["idempotency_key"] == ids.attempt_id(run_id, "contain", 1)
    assert quarantine["effect"]["blocked"] == sent["alert"]["email"]["sender"]
    # Nobody's account was touched, and a case holds the evidence.
    assert not [c for c in await recorded(stack, "idp") if user in c["path"]]
    cases = await world_call(stack, "GET", f"/cases/api/v1/cases?tag={alert_id}")
    [case] = cases["cases"]
    assert case["baton_run"] == run_id
    assert case["containment"]["status"] == "quarantined"
    assert case["approval"] is None
    assert case["enrichment"]["url_reputation"]["verdict"] == "malicious"
    # The timeline as the audit service showed it when the case was opened.
    kinds = [e["type"] for e in case["timeline"]["items"]]
    assert kinds[0] == "baton.run.started.v1"
    assert "baton.step.succeeded.v1" in kinds


async def test_an_uncertain_verdict_goes_to_an_engineer_and_locks_only_once_approved_in_slack(
    stack: WorldStack,
) -> None:
    user = fresh_user()
    sent = await send_alert(stack, "uncertain", user)
    alert_id = sent["alert_id"]
    run_id = ids.run_id_for(STORY, alert_id)

    gate = await pending_gate(stack, run_id)
    assert gate["context"]["verdict"] == "malicious"
    assert gate["context"]["user"] == user
    # The engineer got the full context in Slack; nothing was locked yet.
    triage = await world_call(
        stack, "GET", f"/_slack/messages?channel=%23secops-triage&contains={alert_id}"
    )
    [note] = triage["messages"]
    assert "SIEM incidents" in json.dumps(note["blocks"])
    assert "Reasoning" in json.dumps(note["blocks"])
    assert not [c for c in await recorded(stack, "idp") if user in c["path"]]

    async def shown_in_slack() -> bool:
        found = await world_call(stack, "GET", f"/_slack/messages?contains={gate['gate_id']}")
        return bool(found["messages"])

    await eventually(shown_in_slack, within=60, what="the gate posted to Slack")
    pressed = await world_call(
        stack,
        "POST",
        "/_slack/press",
        {"gate_id": gate["gate_id"], "user": "U0ALICE", "action": "approve"},
    )
    assert pressed["press"]["status"] == 200
    assert '"ok":true' in pressed["press"]["body"].replace(" ", "")

    view = await run_reaches(stack, run_id, ("succeeded", "failed"))
    assert view["run"]["status"] == "succeeded"
    [granted] = events_of(view, "baton.approval.granted.v1")
    assert granted["data"]["approver"] == "alice"
    # Suspended exactly once, with the attempt's idempotency key; sessions revoked.
    suspends = [c for c in await recorded(stack, "idp", "/lifecycle/suspend") if user in c["path"]]
    assert [c["effect"].get("applied") for c in suspends] == [True]
    assert suspends[0]["idempotency_key"] == ids.attempt_id(run_id, "disable_account", 1)
    revokes = [c for c in await recorded(stack, "idp", "/sessions") if user in c["path"]]
    assert len(revokes) == 1
    assert revokes[0]["status"] == 204
    [case] = (await world_call(stack, "GET", f"/cases/api/v1/cases?tag={alert_id}"))["cases"]
    assert case["approval"]["approver"] == "alice"
    assert case["remediation"] == {"account_suspended": True, "sessions_revoked": True}
    assert case["engineer_notified"]["ok"] is True

    # The evidence bundle and the export hold the same story.
    async with httpx.AsyncClient(timeout=60) as client:
        bundle = await client.get(f"{stack.url('audit')}/runs/{run_id}/evidence", headers=VIEWER)
        export = await client.get(
            f"{stack.url('audit')}/export/events",
            params={"format": "jsonl", "run_id": run_id},
            headers=VIEWER,
        )
    assert bundle.status_code == 200
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        names = archive.namelist()
        approvals = json.loads(archive.read(next(n for n in names if n.endswith("approvals.json"))))
    assert "alice" in json.dumps(approvals)
    lines = [json.loads(line) for line in export.text.splitlines() if line]
    assert {e["type"] for e in lines} >= {"baton.approval.granted.v1", "baton.run.succeeded.v1"}


async def test_a_denied_lockout_touches_no_account_and_still_opens_a_case(
    stack: WorldStack,
) -> None:
    user = fresh_user()
    sent = await send_alert(stack, "uncertain", user)
    alert_id = sent["alert_id"]
    run_id = ids.run_id_for(STORY, alert_id)
    gate = await pending_gate(stack, run_id)
    await decide(stack, gate["gate_id"], "deny", "user confirmed they did not enter a password")

    view = await run_reaches(stack, run_id, ("succeeded", "failed"))
    assert view["run"]["status"] == "failed"  # a denied gate fails its step (docs/story-engine.md)
    outcomes = step_outcomes(view)
    assert outcomes["lockout_approval"] == "failed"
    assert "disable_account" not in outcomes or outcomes["disable_account"] == "skipped"
    assert not [c for c in await recorded(stack, "idp") if user in c["path"]]

    async def case_opened() -> dict[str, Any] | None:
        found = await world_call(stack, "GET", f"/cases/api/v1/cases?tag={alert_id}")
        return found["cases"][0] if found["cases"] else None

    case = await eventually(case_opened, within=60, what="on_failure opened a case")
    assert "not-remediated" in case["tags"]
    assert case["approval"]["decision"] == "denied"
    assert case["approval"]["comment"] == "user confirmed they did not enter a password"
