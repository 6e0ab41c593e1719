"""hardware-request, identity-reconciliation and evaluation end to end on the local world:
the five services as processes on the real Kafka and PostgreSQL, one platform and world for
the module. Assertions read what the world recorded and what the audit service shows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from platform_kit import VIEWER
from world_kit import (
    EVALUATION_TOKEN,
    FORM_TOKEN,
    MANAGER,
    WorldStack,
    decide,
    events_of,
    pending_gate,
    post_webhook,
    recorded,
    run_reaches,
    start_tick,
    step_outcomes,
    world_call,
    world_stack,
)

from baton_common import ids

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorldStack]:
    log_dir = tmp_path_factory.mktemp("world-stories-logs")
    stories = ["hardware-request", "identity-reconciliation", "evaluation"]
    with world_stack(kafka_bootstrap, database_url, log_dir, stories) as stack:
        yield stack


async def hardware(stack: WorldStack, employee: str, description: str) -> str:
    submission = f"qr-{uuid.uuid4().hex[:8]}"
    body = {
        "submission_id": submission,
        "employee": employee,
        "asset_tag": "AT-12345",
        "description": description,
    }
    await post_webhook(stack, "hardware-requests", body, FORM_TOKEN)
    return ids.run_id_for("hardware-request", submission)


async def orders_for(stack: WorldStack, run_id: str) -> list[dict[str, Any]]:
    """Orders the shop received from this run's ``order`` step (any attempt)."""
    keys = {ids.attempt_id(run_id, "order", n) for n in (1, 2, 3)}
    return [c for c in await recorded(stack, "itam", "/orders") if c["idempotency_key"] in keys]


async def test_a_cheap_fix_is_ordered_at_once_and_the_employee_told(stack: WorldStack) -> None:
    run_id = await hardware(stack, "bob@corp.example", "My screen is cracked after a fall")
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))

    assert view["run"]["status"] == "succeeded"
    assert events_of(view, "baton.approval.not-needed.v1")  # 320 EUR: below the 500 limit
    [order] = await orders_for(stack, run_id)
    assert order["body"]["sku"] == "SCREEN-REPAIR-14"
    assert order["body"]["ship_to"] == "London"
    conversation = order["body"]["conversation"]
    replies = await recorded(stack, "cases", f"/conversations/{conversation}/messages")
    assert "placed" in replies[0]["body"]["text"]


async def test_a_costly_fix_waits_for_an_it_manager(stack: WorldStack) -> None:
    run_id = await hardware(stack, "heidi@corp.example", "My laptop was stolen on the train")
    gate = await pending_gate(stack, run_id)
    assert gate["context"]["classified_as"].startswith("lost_device")
    assert await orders_for(stack, run_id) == []  # nothing bought before the approval

    await decide(stack, gate["gate_id"], "approve", "replace it", token=MANAGER)
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))
    assert view["run"]["status"] == "succeeded"
    [order] = await orders_for(stack, run_id)
    assert order["body"]["sku"] == "LAPTOP-STD-14"
    assert order["idempotency_key"] == ids.attempt_id(run_id, "order", 1)


async def test_a_denied_costly_fix_buys_nothing(stack: WorldStack) -> None:
    run_id = await hardware(stack, "carol@corp.example", "laptop lost at the airport")
    gate = await pending_gate(stack, run_id)
    await decide(stack, gate["gate_id"], "deny", "use the spare pool", token=MANAGER)
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))

    assert view["run"]["status"] == "failed"  # a denied gate fails its step
    assert step_outcomes(view)["review"] == "failed"
    assert await orders_for(stack, run_id) == []


async def test_reconciliation_applies_what_policy_allows_and_asks_for_privileged_accounts(
    stack: WorldStack,
) -> None:
    run_id = await start_tick(
        stack, "identity-reconciliation", datetime(2026, 11, 30, 6, tzinfo=UTC)
    )
    gate = await pending_gate(stack, run_id)
    assert [c["user"] for c in gate["context"]["changes"]] == ["erin@corp.example"]

    # Ordinary accounts were corrected without a person; erin (privileged) not yet.
    async def idp_writes() -> list[dict[str, Any]]:
        return [c for c in await recorded(stack, "idp") if c["method"] == "POST"]

    writes = await idp_writes()
    paths = sorted(c["path"] for c in writes)
    assert paths == [
        "/idp/api/v1/users/frank@corp.example/lifecycle/suspend",
        "/idp/api/v1/users/grace@corp.example",
    ]
    assert writes[0]["effect"]["applied"] is True
    # The model's over-reach (grace's groups) never reached the identity provider.
    assert not [c for c in writes if "groups" in json.dumps(c["body"])]

    await decide(stack, gate["gate_id"], "approve", "title per HR")
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))
    assert view["run"]["status"] == "succeeded"
    [erin] = [c for c in await idp_writes() if "erin" in c["path"]]
    assert erin["body"] == {"profile": {"title": "Systems Administrator"}}
    [case] = (await world_call(stack, "GET", "/cases/api/v1/cases?tag=identity-reconciliation"))[
        "cases"
    ]
    assert [r["field"] for r in case["refused_by_policy"]] == ["groups"]
    assert case["privileged_approval"]["approver"] == "alice"


async def test_a_denied_privileged_change_is_never_applied(stack: WorldStack) -> None:
    proposal = {
        "fields": {
            "corrections": [
                {
                    "user": "erin@corp.example",
                    "action": "update",
                    "field": "title",
                    "value": "Intern",
                    "reason": "scripted",
                },
                {
                    "user": "heidi@corp.example",
                    "action": "update",
                    "field": "department",
                    "value": "Platform",
                    "reason": "scripted",
                },
            ]
        },
        "confidence": 0.8,
        "reasoning": "a scripted proposal",
    }
    await world_call(
        stack, "POST", "/_llm/scripts", {"match": "Reconcile the identity", "answer": proposal}
    )
    run_id = await start_tick(
        stack, "identity-reconciliation", datetime(2026, 12, 1, 6, tzinfo=UTC)
    )
    gate = await pending_gate(stack, run_id)
    await decide(stack, gate["gate_id"], "deny", "erin is not an intern")
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))

    assert view["run"]["status"] == "failed"
    outcomes = step_outcomes(view)
    assert outcomes["apply"] == "succeeded"
    assert "apply_privileged" not in outcomes or outcomes["apply_privileged"] == "skipped"
    writes = [c for c in await recorded(stack, "idp") if c["method"] == "POST"]
    [heidi] = [c for c in writes if "heidi" in c["path"]]
    assert heidi["body"] == {"profile": {"department": "Platform"}}
    assert heidi["idempotency_key"] == ids.attempt_id(run_id, "apply[0]", 1)
    assert not [c for c in writes if "erin" in c["path"] and "Intern" in json.dumps(c["body"])]


@pytest.mark.parametrize(
    ("user", "high_risk"), [("dana@corp.example", True), ("heidi@corp.example", False)]
)
async def test_evaluation_branches_asks_and_ends_with_an_exported_audit_log(
    stack: WorldStack, user: str, high_risk: bool
) -> None:
    signin = f"signin-{uuid.uuid4().hex[:8]}"
    body = {"signin_id": signin, "user": user, "country": "BR"}
    await post_webhook(stack, "evaluation", body, EVALUATION_TOKEN)
    run_id = ids.run_id_for("evaluation", signin)
    if high_risk:
        gate = await pending_gate(stack, run_id)
        assert not [c for c in await recorded(stack, "idp", "/sessions") if user in c["path"]]
        await decide(stack, gate["gate_id"], "approve", "revoke")
    view = await run_reaches(stack, run_id, ("succeeded", "failed"))

    assert view["run"]["status"] == "succeeded"
    outcomes = step_outcomes(view)
    assert outcomes["revoke" if high_risk else "ticket"] == "succeeded"
    assert outcomes["ticket" if high_risk else "revoke"] == "skipped"
    revokes = [c for c in await recorded(stack, "idp", "/sessions") if user in c["path"]]
    assert len(revokes) == (1 if high_risk else 0)
    # The run filed its own audit log (as far as it went) in the case system ...
    cases = (await world_call(stack, "GET", f"/cases/api/v1/cases?tag={signin}"))["cases"]
    [archived] = [c for c in cases if "audit-log" in c["tags"]]
    lines = [json.loads(x) for x in archived["audit_log_jsonl"].splitlines() if x]
    assert lines[0]["type"] == "baton.run.started.v1"
    assert ("baton.approval.granted.v1" in {e["type"] for e in lines}) is high_risk
    # ... and the complete log exports afterwards, every event chained.
    async with httpx.AsyncClient(timeout=60) as client:
        export = await client.get(
            f"{stack.url('audit')}/export/events",
            params={"format": "jsonl", "run_id": run_id},
            headers=VIEWER,
        )
    exported = [json.loads(x) for x in export.text.splitlines() if x]
    assert exported[-1]["type"] == "baton.run.succeeded.v1"
    assert len(exported) == len(view["timeline"])
