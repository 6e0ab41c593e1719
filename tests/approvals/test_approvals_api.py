"""The approvals HTTP API against a real PostgreSQL, with Kafka replaced by a fake publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from jwks import JwksServer, rsa_key, token

from baton_approvals.db import Pool, create_pool
from baton_approvals.main import create_app
from baton_approvals.settings import ApprovalsSettings
from baton_common.auth import JwtSettings
from baton_common.commands import COMMAND_ADAPTER, DecideApproval
from baton_common.kafka import ConsumedRecord

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

ALICE = {"Authorization": "Bearer t-alice"}  # group secops-oncall
BOB = {"Authorization": "Bearer t-bob"}  # group helpdesk: not an approver
CAROL = {"Authorization": "Bearer t-carol"}  # named approver


@pytest.fixture
async def app(settings: ApprovalsSettings, publisher: FakePublisher) -> AsyncIterator[FastAPI]:
    app = create_app(settings, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approvals") as client:
        yield client


@pytest.fixture
async def gates(app: FastAPI, settings: ApprovalsSettings) -> AsyncIterator[Pool]:
    """Gate g1 pending, g2 approved; the app has migrated the schema."""
    pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
    await project(
        pool,
        [
            record_of(opened("g1", run_id="r1"), 0),
            record_of(opened("g2", run_id="r2"), 1),
            record_of(closed("g2", run_id="r2"), 2),
        ],
    )
    try:
        yield pool
    finally:
        await pool.close()


async def project(pool: Pool, records: list[ConsumedRecord]) -> None:
    """Apply records of ``baton.tasks.approvals`` to the inbox, as the consumer does."""
    await inbox_projector(pool).apply_batch(TOPIC, 0, records)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic YWxpY2U6eA=="}, "missing bearer token"),
        ({"Authorization": "Bearer t-mallory"}, "invalid bearer token: unknown token"),
    ],
)
async def test_unauthenticated_requests_get_401(
    client: httpx.AsyncClient, gates: Pool, headers: dict[str, str], reason: str
) -> None:
    for response in [
        await client.get("/approvals", headers=headers),
        await client.get("/approvals/g1", headers=headers),
        # Authentication comes before the body is looked at.
        await client.post("/approvals/g1/decision", headers=headers, json={"decision": "x"}),
    ]:
        assert response.status_code == 401
        assert response.json()["detail"].startswith(reason)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_list_and_get(client: httpx.AsyncClient, gates: Pool) -> None:
    listed = await client.get("/approvals", params={"state": "pending"}, headers=BOB)
    assert listed.status_code == 200
    assert [g["gate_id"] for g in listed.json()["items"]] == ["g1"]

    everything = await client.get("/approvals", params={"group": "secops-oncall"}, headers=BOB)
    assert sorted(g["gate_id"] for g in everything.json()["items"]) == ["g1", "g2"]

    mine = await client.get("/approvals", params={"mine": True}, headers=BOB)
    assert mine.json() == {"items": []}

    gate = await client.get("/approvals/g1", headers=BOB)
    assert gate.status_code == 200
    assert gate.json()["state"] == "pending"
    assert gate.json()["approvers"] == ["group:secops-oncall", "carol"]


async def test_list_rejects_an_unknown_state(client: httpx.AsyncClient, gates: Pool) -> None:
    response = await client.get("/approvals", params={"state": "maybe"}, headers=BOB)
    assert response.status_code == 422


async def test_unknown_gate_is_404(client: httpx.AsyncClient, gates: Pool) -> None:
    assert (await client.get("/approvals/nope", headers=ALICE)).json() == {
        "detail": "no approval gate nope"
    }
    response = await client.post(
        "/approvals/nope/decision", headers=ALICE, json={"decision": "approve"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe"},
        {"comment": "no decision"},
        {"decision": "approve", "extra": 1},
        {"decision": "approve", "comment": "x" * 4001},
    ],
)
async def test_a_bad_decision_body_is_422(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher, body: dict[str, object]
) -> None:
    response = await client.post("/approvals/g1/decision", headers=ALICE, json=body)

    assert response.status_code == 422
    assert publisher.records == []


async def test_a_non_approver_is_403(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    response = await client.post(
        "/approvals/g1/decision", headers=BOB, json={"decision": "approve"}
    )

    assert response.status_code == 403
    assert response.json()["detail"].startswith("bob is not an approver of gate g1")
    # still in the log, marked refused: the scheduler records it as CommandRejected
    [envelope] = publisher.envelopes("baton.commands")
    assert envelope.actor == "bob"
    assert envelope.data["refused"] == response.json()["detail"]


async def test_a_closed_gate_is_409(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    response = await client.post("/approvals/g2/decision", headers=ALICE, json={"decision": "deny"})

    assert response.status_code == 409
    assert response.json() == {"detail": "gate g2 is approved"}
    [envelope] = publisher.envelopes("baton.commands")
    assert (envelope.data["gate_id"], envelope.data["decision"]) == ("g2", "deny")
    assert envelope.data["refused"] == "gate g2 is approved"


async def test_a_group_approver_decides(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    response = await client.post(
        "/approvals/g1/decision",
        headers=ALICE,
        json={"decision": "approve", "comment": "contain it"},
    )

    assert response.status_code == 202
    body = response.json()
    assert (body["gate_id"], body["decision"]) == ("g1", "approve")
    [record] = publisher.records
    assert (record.topic, record.key) == ("baton.commands", b"r1")
    [envelope] = publisher.envelopes("baton.commands")
    assert envelope.id == body["command_id"]
    assert (envelope.source, envelope.subject, envelope.actor) == ("baton/approvals", "r1", "alice")
    assert (envelope.storyid, envelope.storyversion) == ("phishing-triage", 4)
    assert (envelope.causationid, envelope.correlationid) == ("open-g1", "corr-r1")
    assert COMMAND_ADAPTER.validate_python(envelope.data) == DecideApproval(
        run_id="r1",
        gate_id="g1",
        decision="approve",
        approver="alice",
        approver_groups=["secops-oncall"],
        comment="contain it",
        channel="api",
    )

    # The log is the truth: the gate stays pending until the scheduler closes it.
    gate = (await client.get("/approvals/g1", headers=ALICE)).json()
    assert gate["state"] == "pending"
    assert (gate["decision_requested"], gate["decision_requested_by"]) == ("approve", "alice")
    assert gate["decision_command_id"] == body["command_id"]


async def test_a_named_approver_decides(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    response = await client.post("/approvals/g1/decision", headers=CAROL, json={"decision": "deny"})

    assert response.status_code == 202
    [envelope] = publisher.envelopes("baton.commands")
    assert envelope.data["approver"] == "carol"
    assert envelope.data["approver_groups"] == []
    assert envelope.data["comment"] is None


async def test_kafka_down_is_503_with_retry_after(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    publisher.failing = True

    response = await client.post(
        "/approvals/g1/decision", headers=ALICE, json={"decision": "approve"}
    )

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    gate = (await client.get("/approvals/g1", headers=ALICE)).json()
    assert gate["decision_requested"] is None


async def test_operations_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    metrics = await client.get("/metrics")
    assert "baton_approvals_decisions_total" in metrics.text


async def test_openapi_lists_the_routes(settings: ApprovalsSettings) -> None:
    paths = create_app(settings, publisher=FakePublisher(), consume=False).openapi()["paths"]

    assert {"/approvals", "/approvals/{gate_id}", "/approvals/{gate_id}/decision"} <= set(paths)


async def test_one_decision_per_person_and_the_scheduler_judges_the_rest(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    first = await client.post(
        "/approvals/g1/decision", headers=ALICE, json={"decision": "approve", "comment": "yes"}
    )
    again = await client.post("/approvals/g1/decision", headers=ALICE, json={"decision": "deny"})
    other = await client.post("/approvals/g1/decision", headers=CAROL, json={"decision": "deny"})

    assert (first.status_code, again.status_code, other.status_code) == (202, 409, 202)
    assert again.json()["detail"].startswith("alice already decided gate g1 (approve via api at ")
    assert [
        (e.data["approver"], e.data["refused"]) for e in publisher.envelopes("baton.commands")
    ] == [
        ("alice", None),
        ("alice", again.json()["detail"]),  # the repeat is in the log, refused
        ("carol", None),
    ]
    detail = (await client.get("/approvals/g1", headers=BOB)).json()
    assert detail["state"] == "pending"  # until the scheduler's GateClosed
    assert [
        (d["approver"], d["decision"], d["comment"], d["channel"]) for d in detail["decisions"]
    ] == [
        ("alice", "approve", "yes", "api"),
        ("carol", "deny", None, "api"),
    ]
    assert detail["decisions"][0]["command_id"] == first.json()["command_id"]


async def test_concurrent_decisions_of_one_person_publish_once(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/approvals/g1/decision", headers=ALICE, json={"decision": d})
            for d in ("approve", "deny", "approve", "deny")
        )
    )

    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409]
    published = publisher.envelopes("baton.commands")
    assert len([e for e in published if e.data["refused"] is None]) == 1
    assert len([e for e in published if e.data["refused"] is not None]) == 3


async def test_a_failed_publish_leaves_the_person_free_to_retry(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    publisher.failing = True
    assert (
        await client.post("/approvals/g1/decision", headers=ALICE, json={"decision": "approve"})
    ).status_code == 503
    publisher.failing = False

    retried = await client.post(
        "/approvals/g1/decision", headers=ALICE, json={"decision": "approve"}
    )

    assert retried.status_code == 202
    assert len(publisher.envelopes("baton.commands")) == 1


async def test_decided_history(client: httpx.AsyncClient, gates: Pool) -> None:
    decided = await client.get("/approvals", params={"state": "decided"}, headers=BOB)

    assert [(g["gate_id"], g["state"], g["decided_by"]) for g in decided.json()["items"]] == [
        ("g2", "approved", "alice")
    ]


async def test_a_deny_needs_a_comment_when_configured(
    settings: ApprovalsSettings, publisher: FakePublisher
) -> None:
    strict = settings.model_copy(update={"deny_requires_comment": True})
    app = create_app(strict, publisher=publisher, consume=False)
    async with app.router.lifespan_context(app):
        await _seed(strict)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            bare = await client.post(
                "/approvals/g1/decision", headers=ALICE, json={"decision": "deny", "comment": " "}
            )
            explained = await client.post(
                "/approvals/g1/decision",
                headers=ALICE,
                json={"decision": "deny", "comment": "wrong host"},
            )

    assert bare.status_code == 422
    assert bare.json() == {"detail": "a comment is required to deny a gate"}
    assert explained.status_code == 202
    [envelope] = publisher.envelopes("baton.commands")
    assert envelope.data["comment"] == "wrong host"


async def test_bearer_jwts_from_a_jwks(
    settings: ApprovalsSettings, publisher: FakePublisher
) -> None:
    key = rsa_key()
    with JwksServer({"k1": key}) as jwks:
        configured = settings.model_copy(
            update={
                "auth": settings.auth.model_copy(
                    update={
                        "jwt": JwtSettings(
                            jwks_url=jwks.url,
                            algorithms=["RS256"],
                            audience="baton",
                            user_claim="email",
                            groups_claim="grp",
                        )
                    }
                )
            }
        )
        app = create_app(configured, publisher=publisher, consume=False)
        async with app.router.lifespan_context(app):
            await _seed(configured)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:

                def bearer(
                    email: str, grp: list[str], lifetime: float = 60, roles: str = "approver"
                ) -> dict[str, str]:
                    signed = token(
                        key, aud="baton", email=email, grp=grp, roles=roles, lifetime=lifetime
                    )
                    return {"Authorization": f"Bearer {signed}"}

                oncall = bearer(email="erin@example.test", grp=["secops-oncall"])
                helpdesk = bearer(email="frank@example.test", grp=["helpdesk"])
                expired = bearer(email="erin@example.test", grp=["secops-oncall"], lifetime=-99)
                no_role = bearer(email="gil@example.test", grp=["secops-oncall"], roles="viewer")
                body = {"decision": "approve"}
                unassigned = await client.post("/approvals/g1/decision", headers=no_role, json=body)
                ok = await client.post("/approvals/g1/decision", headers=oncall, json=body)
                forbidden = await client.post("/approvals/g1/decision", headers=helpdesk, json=body)
                stale = await client.post("/approvals/g1/decision", headers=expired, json=body)
                static = await client.get("/approvals", headers=BOB)

    assert ok.status_code == 202
    assert ok.json()["approver"] == "erin@example.test"
    [envelope, refused] = publisher.envelopes("baton.commands")
    assert envelope.data["approver_groups"] == ["secops-oncall"]
    assert refused.data["refused"] == forbidden.json()["detail"]  # recorded, refused
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"].startswith("frank@example.test is not an approver of gate g1")
    assert stale.status_code == 401
    assert stale.json()["detail"] == "invalid bearer token: JWT expired"
    assert static.status_code == 200  # static tokens still work beside JWTs
    assert unassigned.status_code == 403
    assert unassigned.json()["detail"] == (
        "gil@example.test lacks the approver role on any team (holds: viewer)"
    )


async def _seed(settings: ApprovalsSettings) -> None:
    await project_gates(settings, [opened("g1", run_id="r1")])


async def test_four_eyes_refuses_an_excluded_approval_up_front_and_records_it(
    client: httpx.AsyncClient, gates: Pool, publisher: FakePublisher
) -> None:
    await project(gates, [record_of(opened("g3", run_id="r3", excluded=["alice"]), 3)])

    refused = await client.post(
        "/approvals/g3/decision", headers=ALICE, json={"decision": "approve"}
    )
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("four-eyes: alice cannot approve gate g3")
    [envelope] = publisher.envelopes("baton.commands")
    assert (envelope.actor, envelope.data["refused"]) == ("alice", refused.json()["detail"])

    # an excluded person may still deny, and the refusal did not use up their decision
    denied = await client.post("/approvals/g3/decision", headers=ALICE, json={"decision": "deny"})
    assert denied.status_code == 202
    assert publisher.envelopes("baton.commands")[-1].data["refused"] is None
