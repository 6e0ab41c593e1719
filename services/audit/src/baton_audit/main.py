"""Wiring of the audit service: the only place that constructs clients and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from baton_audit.admin import PROJECTED_TABLES, checksum, positions
from baton_audit.api import Admin, audit_router
from baton_audit.consumer import Projector
from baton_audit.db import Pool, create_pool, migrate, ping
from baton_audit.governance_api import governance_router
from baton_audit.settings import AuditSettings
from baton_audit.store import AuditStore
from baton_audit.writer import AuditWriter
from baton_common.auth import Gatekeeper, authenticator_of, identity_router
from baton_common.heap import release_heap, settle_heap
from baton_common.kafka import make_consumer, make_producer
from baton_common.projection import start_projection
from baton_common.publishing import KafkaPublisher, Publisher
from baton_common.readiness import kafka_reachable
from baton_common.service import ReadinessCheck, configure_logging, operations_router
from baton_common.telemetry import configure_tracing

__all__ = ["create_app", "run"]

log = structlog.get_logger(__name__)

SERVICE = "audit"
CLIENT_ID = "baton-audit"


class _Running:
    """What the lifespan starts; the routes and checks read it per request."""

    def __init__(self) -> None:
        self.pool: Pool | None = None
        self.store: AuditStore | None = None
        self.publisher: Publisher | None = None
        self.producer: AIOKafkaProducer | None = None
        self.projector: Projector | None = None

    def audit_store(self) -> AuditStore:
        if self.store is None:
            raise RuntimeError("audit is not started")
        return self.store

    def admin(self) -> Admin:
        pool, projector = self.pool, self.projector
        if pool is None:
            raise RuntimeError("audit is not started")

        async def rebuild() -> None:
            if projector is None:
                raise RuntimeError("this audit instance does not consume (consume=False)")
            await projector.reset(list(PROJECTED_TABLES))

        async def digest() -> tuple[str, dict[str, int]]:
            return await checksum(pool)

        async def stored() -> dict[str, dict[int, int]]:
            return await positions(pool)

        return Admin(rebuild=rebuild, checksum=digest, positions=stored)

    async def postgres_ready(self) -> str | None:
        return "not started" if self.pool is None else await ping(self.pool)

    async def producer_ready(self) -> str | None:
        if self.publisher is None:
            return "not started"
        return None if self.producer is None else await kafka_reachable(self.producer)

    async def consumer_ready(self) -> str | None:
        return "not started" if self.projector is None else self.projector.not_ready()


def create_app(
    settings: AuditSettings,
    *,
    publisher: Publisher | None = None,
    consume: bool = True,
) -> FastAPI:
    """The audit app; its lifespan migrates PostgreSQL and starts the projection of
    ``baton.runs`` and ``baton.stories``.

    Args:
        settings: the service's settings.
        publisher: where dead letters go; None starts a Kafka producer.
        consume: whether to run the ``baton.runs`` projection.
    """
    running = _Running()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await create_pool(
                settings.database_url, schema=settings.db_schema, max_size=settings.db_pool_size
            )
            stack.push_async_callback(pool.close)
            await migrate(pool, schema=settings.db_schema)

            sink = publisher
            if sink is None:
                producer = make_producer(settings.kafka_bootstrap, client_id=CLIENT_ID)
                await producer.start()
                stack.push_async_callback(producer.stop)
                running.producer = producer
                sink = KafkaPublisher(producer, timeout=settings.publish_timeout_seconds)

            if consume:
                consumer = make_consumer(
                    settings.kafka_bootstrap, group_id=settings.group_id, client_id=CLIENT_ID
                )
                projector = Projector(
                    consumer=consumer,
                    pool=pool,
                    handle=AuditWriter(
                        runs_topic=settings.topics.runs,
                        stories_topic=settings.topics.stories,
                        kept_runs=settings.kept_runs,
                    ).apply,
                    publisher=sink,
                    name=SERVICE,
                    dlq_topic=settings.topics.dlq,
                    max_records=settings.batch_records,
                )
                topics = [settings.topics.runs, settings.topics.stories]
                await start_projection(stack, projector, consumer, topics, SERVICE)
                running.projector = projector

            running.pool, running.store, running.publisher = pool, AuditStore(pool), sink
            stack.callback(release_heap, settle_heap(settings.gc_threshold))
            log.info("audit started", consuming=consume)
            try:
                yield
            finally:
                log.info("audit stopping")
                running.pool = running.store = running.publisher = running.projector = None

    app = FastAPI(title="Baton audit", version="0.1.0", lifespan=lifespan)
    checks: dict[str, ReadinessCheck] = {"postgres": running.postgres_ready}
    if publisher is None:
        checks["kafka_producer"] = running.producer_ready
    if consume:
        checks["kafka_consumer"] = running.consumer_ready
    gatekeeper = Gatekeeper(authenticator_of(settings.auth))
    app.include_router(operations_router(checks))
    app.include_router(identity_router(gatekeeper))
    app.include_router(
        audit_router(
            store=running.audit_store,
            admin=running.admin,
            gatekeeper=gatekeeper,
        )
    )
    app.include_router(governance_router(store=running.audit_store, gatekeeper=gatekeeper))
    return app


def run() -> None:
    """Console entry point ``baton-audit``."""
    settings = AuditSettings()
    configure_logging(CLIENT_ID, settings.log_level)
    configure_tracing(SERVICE)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
    )
