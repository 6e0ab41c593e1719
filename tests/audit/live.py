"""The audit service on real Kafka and PostgreSQL, served over HTTP from a thread.

The ``baton`` CLI runs ``asyncio.run`` itself, so tests that drive it are synchronous
and everything asynchronous here runs in its own loop or thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import asyncpg
import kafka_topics
from served import ServedApp

from baton_audit.db import quote_ident
from baton_audit.main import create_app
from baton_audit.settings import AuditSettings
from baton_common.envelope import Envelope
from baton_common.kafka import ConsumedRecord, OutboundRecord, make_producer, outbound
from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, within: float = 60, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something other than None or False."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.1)
    raise TimeoutError(f"{what} not reached within {within}s (last: {last!r})")


def topics(namespace: str) -> TopicSettings:
    return TopicSettings(
        stories=f"{namespace}.baton.stories",
        ingest=f"{namespace}.baton.ingest",
        commands=f"{namespace}.baton.commands",
        runs=f"{namespace}.baton.runs",
        tasks_prefix=f"{namespace}.baton.tasks.",
        approvals=f"{namespace}.baton.tasks.approvals",
        dlq=f"{namespace}.baton.dlq",
        partitions=3,
        ingest_partitions=1,
    )


def provision(bootstrap: str, names: TopicSettings) -> None:
    asyncio.run(provision_topics(bootstrap, names))


def produce(bootstrap: str, records: list[OutboundRecord]) -> None:
    async def send() -> None:
        producer = make_producer(bootstrap, client_id="audit-tests")
        await producer.start()
        try:
            for record in records:
                await record.send(producer)
        finally:
            await producer.stop()

    asyncio.run(send())


def run_records(topic: str, envelopes: list[Envelope]) -> list[OutboundRecord]:
    return [outbound(topic, e.subject, e) for e in envelopes]


def as_outbound(topic: str, records: list[ConsumedRecord]) -> list[OutboundRecord]:
    return [
        OutboundRecord(topic, r.key, r.value or b"", list(r.headers), r.partition) for r in records
    ]


class Served(ServedApp):
    """The audit app (projection included) served by uvicorn in a thread."""

    def __init__(self, settings: AuditSettings) -> None:
        super().__init__(create_app(settings), name="audit-under-test")

    def start(self, within: float = 60) -> Served:
        super().start(within)
        return self


def sql(database_url: str, schema: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def drop_schema(database_url: str, schema: str) -> None:
    sql(database_url, "public", f"drop schema if exists {quote_ident(schema)} cascade")


def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    asyncio.run(kafka_topics.create_topic(bootstrap, name, partitions))
