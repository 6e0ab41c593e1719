"""`POST /runs/{id}/cancel`: the operator role on the story's team, the caller recorded as
who asked, and the CancelRun command appended through the real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from jwks import JwksServer, rsa_key, token
from platform_kit import topic_env
from roles_kit import ADMIN, AUTH, EVERYONE, TEAM, Route, bearer, check, table
from served import ServedApp
from typer.testing import CliRunner

from baton_cli.main import app as cli
from baton_common.auth import Gatekeeper, JwtSettings, authenticator_of
from baton_common.commands import COMMAND_ADAPTER, CancelRun
from baton_common.envelope import decode_record
from baton_common.kafka import make_consumer, make_producer, read_to_end
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_scheduler.api import RunOwner, operator_router

OWNERS = {"r-secops": RunOwner("triage", TEAM), "r-unowned": RunOwner("legacy", None)}


class FakeProducer:
    """Records what the API sends instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    async def send_and_wait(self, topic: str, value: bytes | None, **_: object) -> None:
        self.sent.append((topic, value))


def scheduler_app(producer: AIOKafkaProducer | None, topics: TopicSettings) -> FastAPI:
    app = FastAPI()
    app.include_router(
        operator_router(
            topics,
            lambda: producer,
            gatekeeper=Gatekeeper(authenticator_of(AUTH)),
            run_owner=OWNERS.get,
        )
    )
    return app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler")


CANCEL = {"reason": "false positive"}
ROUTES = [
    Route("POST", "/runs/r-secops/cancel", frozenset({"operator", "admin", "team-admin"}), 202),
    # a story without an owner, or a run this scheduler does not hold: unscoped grants only
    Route("POST", "/runs/r-unowned/cancel", frozenset({"admin"}), 202),
    Route("POST", "/runs/r-elsewhere/cancel", frozenset({"admin"}), 202),
]


@pytest.mark.parametrize(("route", "caller"), table(ROUTES))
async def test_roles_on_the_cancel_route(route: Route, caller: str) -> None:
    producer = FakeProducer()
    app = scheduler_app(cast(AIOKafkaProducer, producer), TopicSettings())
    async with client_of(app) as client:
        response = await check(client, Route(**{**vars(route), "body": CANCEL}), caller)
    assert len(producer.sent) == (1 if response.status_code == 202 else 0)
    assert route.allowed <= EVERYONE


async def test_a_team_scoped_operator_is_told_why_an_unknown_run_is_refused() -> None:
    async with client_of(scheduler_app(None, TopicSettings())) as client:
        answer = await client.post(
            "/runs/r-elsewhere/cancel", json=CANCEL, headers=bearer("team-admin")
        )
    assert answer.status_code == 403
    assert "is not held by this scheduler" in answer.json()["detail"]


async def test_jwts_from_a_jwks_carry_the_operator_role() -> None:
    key = rsa_key()
    with JwksServer({"k1": key}) as jwks:
        auth = AUTH.model_copy(
            update={"jwt": JwtSettings(jwks_url=jwks.url, algorithms=["RS256"], audience="baton")}
        )
        producer = FakeProducer()
        app = FastAPI()
        app.include_router(
            operator_router(
                TopicSettings(),
                lambda: cast(AIOKafkaProducer, producer),
                gatekeeper=Gatekeeper(authenticator_of(auth)),
                run_owner=OWNERS.get,
            )
        )

        def signed(roles: list[str], lifetime: float = 60) -> dict[str, str]:
            jwt = token(key, sub="sam", aud="baton", roles=roles, lifetime=lifetime)
            return {"Authorization": f"Bearer {jwt}"}

        async with client_of(app) as client:
            ours = await client.post(
                "/runs/r-secops/cancel", json=CANCEL, headers=signed(["operator@secops"])
            )
            theirs = await client.post(
                "/runs/r-secops/cancel", json=CANCEL, headers=signed(["operator@itops"])
            )
            expired = await client.post(
                "/runs/r-secops/cancel", json=CANCEL, headers=signed(["admin"], lifetime=-99)
            )

    assert (ours.status_code, ours.json()["requested_by"]) == (202, "sam")
    assert theirs.status_code == 403
    assert theirs.json()["detail"] == (
        "sam lacks the operator role on team secops (holds: operator@itops)"
    )
    assert (expired.status_code, expired.json()["detail"]) == (
        401,
        "invalid bearer token: JWT expired",
    )
    assert len(producer.sent) == 1


async def commands_in(
    bootstrap: str, topics: TopicSettings
) -> list[tuple[bytes | None, CancelRun, str]]:
    """(key, command, id|actor) of every record on the commands topic."""
    consumer = make_consumer(bootstrap, topics.commands, group_id=None, client_id="t-c")
    await consumer.start()
    try:
        records = [r async for r in read_to_end(consumer)]
    finally:
        await consumer.stop()
    out = []
    for record in records:
        envelope = decode_record(record.value, record.headers)
        command = COMMAND_ADAPTER.validate_python(envelope.data)
        assert isinstance(command, CancelRun)
        out.append((record.key, command, f"{envelope.id}|{envelope.actor}"))
    return out


def own_topics() -> TopicSettings:
    # every topic in the test's own namespace: default names belong to `make up`'s stack
    ns = f"t{uuid.uuid4().hex[:8]}"
    names = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in topic_env(ns).items()}
    return TopicSettings.model_validate({**names, "partitions": 1, "ingest_partitions": 1})


@pytest.mark.integration
async def test_cancel_records_the_caller_and_answers_202(kafka_bootstrap: str) -> None:
    topics = own_topics()
    await provision_topics(kafka_bootstrap, topics)
    producer = make_producer(kafka_bootstrap, client_id="t-api")
    await producer.start()
    try:
        async with client_of(scheduler_app(producer, topics)) as client:
            operator = bearer("operator")
            body = {"reason": "false positive", "compensate": True}
            answer = await client.post("/runs/r-secops/cancel", json=body, headers=operator)
            assert answer.status_code == 202, answer.text
            assert answer.json()["run_id"] == "r-secops"
            assert answer.json()["requested_by"] == "otto"
            command_id = answer.json()["command_id"]
            missing = await client.post("/runs/r-secops/cancel", json={}, headers=operator)
            assert missing.status_code == 422
            assert "reason" in missing.text
            # who asks is the caller's identity, never a name in the body
            claimed = await client.post(
                "/runs/r-secops/cancel",
                json={"reason": "x", "requested_by": "someone-else"},
                headers=operator,
            )
            assert claimed.status_code == 422
    finally:
        await producer.stop()
    sent = await commands_in(kafka_bootstrap, topics)
    assert len(sent) == 1  # the refused requests appended nothing
    ((key, command, ident),) = sent
    assert ident == f"{command_id}|otto"
    assert (key, command.run_id, command.reason, command.compensate, command.requested_by) == (
        b"r-secops",
        "r-secops",
        "false positive",
        True,
        "otto",
    )


async def test_cancel_before_the_producer_starts_is_503() -> None:
    async with client_of(scheduler_app(None, TopicSettings())) as client:
        answer = await client.post("/runs/r-secops/cancel", json=CANCEL, headers=ADMIN)
    assert answer.status_code == 503
    assert "starting" in answer.text


@pytest.mark.integration
def test_baton_runs_cancel_goes_through_the_api_with_the_token(kafka_bootstrap: str) -> None:
    topics = own_topics()
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    holder: list[AIOKafkaProducer] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(kafka_bootstrap, client_id="t-api")
        await producer.start()
        holder.append(producer)
        yield
        await producer.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        operator_router(
            topics,
            lambda: holder[0] if holder else None,
            gatekeeper=Gatekeeper(authenticator_of(AUTH)),
            run_owner=OWNERS.get,
        )
    )
    served = ServedApp(app, "scheduler-under-test").start()
    try:
        runner = CliRunner()

        def cancel(token: str | None, *args: str) -> tuple[int, str]:
            env = {"BATON_SCHEDULER_URL": served.url, "BATON_TOKEN": token}
            result = runner.invoke(cli, ["runs", "cancel", "r-secops", *args], env=env)
            return result.exit_code, result.output

        code, output = cancel("tok-operator", "--reason", "undo", "--compensate")
        assert code == 0, output
        assert "with compensation requested for run r-secops by otto" in output
        code, output = cancel(None, "--reason", "stop")
        assert code == 1
        assert "not authenticated (HTTP 401)" in output
        assert "Set BATON_TOKEN" in output
        code, output = cancel("tok-operator-itops", "--reason", "stop")
        assert code == 1
        assert "not allowed (HTTP 403): ivan lacks the operator role on team secops" in output
    finally:
        served.stop()
    sent = asyncio.run(commands_in(kafka_bootstrap, topics))
    assert [(k, c.reason, c.compensate, c.requested_by) for k, c, _ in sent] == [
        (b"r-secops", "undo", True, "otto"),
    ]
