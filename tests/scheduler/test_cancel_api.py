"""`POST /runs/{id}/cancel` appends a CancelRun command through the real Kafka."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI
from platform_kit import topic_env
from typer.testing import CliRunner

from baton_cli.common import load_settings
from baton_cli.main import app as cli
from baton_common.commands import COMMAND_ADAPTER, CancelRun
from baton_common.envelope import decode_record
from baton_common.kafka import make_consumer, make_producer, read_to_end
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_scheduler.api import operator_router

pytestmark = pytest.mark.integration


async def commands_in(
    bootstrap: str, topics: TopicSettings
) -> list[tuple[bytes | None, CancelRun, str]]:
    """(key, command, actor) of every record on the commands topic."""
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


def test_baton_runs_cancel_compensate(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = f"t{uuid.uuid4().hex[:8]}"
    for name, value in topic_env(ns).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BATON_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("USER", "bob")
    topics = load_settings().topics
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    runner = CliRunner()
    result = runner.invoke(cli, ["runs", "cancel", "run-9", "--reason", "undo", "--compensate"])
    assert result.exit_code == 0, result.output
    assert "with compensation" in result.output
    plain = runner.invoke(cli, ["runs", "cancel", "run-9", "--reason", "stop"])
    assert plain.exit_code == 0, plain.output
    sent = asyncio.run(commands_in(kafka_bootstrap, topics))
    assert [(k, c.reason, c.compensate, c.requested_by) for k, c, _ in sent] == [
        (b"run-9", "undo", True, "bob"),
        (b"run-9", "stop", False, "bob"),
    ]


async def test_cancel_appends_the_command_and_answers_202(kafka_bootstrap: str) -> None:
    ns = f"t{uuid.uuid4().hex[:8]}"
    # every topic in the test's own namespace: default names belong to `make up`'s stack
    names = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in topic_env(ns).items()}
    topics = TopicSettings.model_validate({**names, "partitions": 1, "ingest_partitions": 1})
    await provision_topics(kafka_bootstrap, topics)
    producer = make_producer(kafka_bootstrap, client_id="t-api")
    await producer.start()
    app = FastAPI()
    app.include_router(operator_router(topics, lambda: producer))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://scheduler"
        ) as client:
            answer = await client.post(
                "/runs/run-1/cancel",
                json={"reason": "false positive", "requested_by": "ann", "compensate": True},
            )
            assert answer.status_code == 202, answer.text
            command_id = answer.json()["command_id"]
            assert answer.json()["run_id"] == "run-1"
            missing = await client.post("/runs/run-1/cancel", json={"requested_by": "ann"})
            assert missing.status_code == 422
            assert "reason" in missing.text
            extra = await client.post(
                "/runs/run-1/cancel", json={"reason": "x", "requested_by": "a", "force": 1}
            )
            assert extra.status_code == 422
    finally:
        await producer.stop()
    sent = await commands_in(kafka_bootstrap, topics)
    assert len(sent) == 1  # the refused requests appended nothing
    ((key, command, ident),) = sent
    assert ident == f"{command_id}|ann"
    assert (key, command.run_id, command.reason, command.compensate) == (
        b"run-1",
        "run-1",
        "false positive",
        True,
    )


async def test_cancel_before_the_producer_starts_is_503() -> None:
    app = FastAPI()
    app.include_router(operator_router(TopicSettings(), lambda: None))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://scheduler"
    ) as client:
        answer = await client.post("/runs/r/cancel", json={"reason": "x", "requested_by": "a"})
    assert answer.status_code == 503
    assert "starting" in answer.text
