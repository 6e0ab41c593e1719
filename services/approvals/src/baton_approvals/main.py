"""Wiring of the approvals service: the only place that constructs clients and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from baton_approvals.api import approvals_router
from baton_approvals.consumer import Projector
from baton_approvals.db import Pool, create_pool, migrate, ping
from baton_approvals.decisions import Decider
from baton_approvals.inbox import inbox_router
from baton_approvals.settings import ApprovalsSettings
from baton_approvals.slack_api import SlackClient
from baton_approvals.slack_notifier import SlackNotifier
from baton_approvals.slack_routes import slack_router
from baton_approvals.store import GateStore, apply_record
from baton_common.auth import Authenticator, Gatekeeper, authenticator_of, identity_router
from baton_common.kafka import make_consumer, make_producer
from baton_common.projection import start_projection
from baton_common.publishing import KafkaPublisher, Publisher
from baton_common.readiness import kafka_reachable
from baton_common.service import ReadinessCheck, configure_logging, operations_router
from baton_common.telemetry import configure_tracing

__all__ = ["create_app", "run"]

log = structlog.get_logger(__name__)

SERVICE = "approvals"
CLIENT_ID = "baton-approvals"


class _Running:
    """What the lifespan starts; the routes and checks read it per request."""

    def __init__(self) -> None:
        self.pool: Pool | None = None
        self.store: GateStore | None = None
        self.publisher: Publisher | None = None
        self.producer: AIOKafkaProducer | None = None
        self.projector: Projector | None = None
        self.decider: Decider | None = None
        self.slack: SlackClient | None = None

    def gate_decider(self) -> Decider:
        if self.decider is None:
            raise RuntimeError("approvals is not started")
        return self.decider

    def slack_client(self) -> SlackClient:
        if self.slack is None:
            raise RuntimeError("approvals is not started")
        return self.slack

    def gate_store(self) -> GateStore:
        if self.store is None:
            raise RuntimeError("approvals is not started")
        return self.store

    async def postgres_ready(self) -> str | None:
        return "not started" if self.pool is None else await ping(self.pool)

    async def producer_ready(self) -> str | None:
        if self.publisher is None:
            return "not started"
        return None if self.producer is None else await kafka_reachable(self.producer)

    async def consumer_ready(self) -> str | None:
        return "not started" if self.projector is None else self.projector.not_ready()


def create_app(
    settings: ApprovalsSettings,
    *,
    publisher: Publisher | None = None,
    authenticator: Authenticator | None = None,
    consume: bool = True,
    slack_http: httpx.AsyncClient | None = None,
) -> FastAPI:
    """The approvals app; its lifespan migrates PostgreSQL and starts the Kafka clients.

    Args:
        settings: the service's settings.
        publisher: where decisions and dead letters go; None starts a Kafka producer.
        authenticator: who callers are; None uses ``settings.auth`` (tokens, JWTs).
        consume: whether to run the ``baton.tasks.approvals`` projection.
        slack_http: the HTTP client of Slack calls; None makes one when Slack is on.
    """
    running = _Running()
    slack = settings.slack

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
                # one decision at a time, awaited by its HTTP request: lingering only delays it
                producer = make_producer(settings.kafka_bootstrap, client_id=CLIENT_ID, linger_ms=0)
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
                    handle=apply_record,
                    publisher=sink,
                    name=SERVICE,
                    dlq_topic=settings.topics.dlq,
                )
                topics = [settings.topics.approvals]
                await start_projection(stack, projector, consumer, topics, SERVICE)
                running.projector = projector

            store = GateStore(pool)
            running.pool, running.store, running.publisher = pool, store, sink
            running.decider = Decider(
                store=store,
                publisher=sink,
                commands_topic=settings.topics.commands,
                deny_requires_comment=settings.deny_requires_comment,
            )
            if slack.enabled:
                assert slack.bot_token is not None
                http = slack_http
                if http is None:
                    http = httpx.AsyncClient(timeout=slack.timeout_seconds)
                    stack.push_async_callback(http.aclose)
                running.slack = SlackClient(
                    http, api_url=slack.api_url, bot_token=slack.bot_token.get_secret_value()
                )
                notifier = SlackNotifier(
                    pool=pool,
                    slack=running.slack,
                    channels=slack.channels,
                    default_channel=slack.channel,
                    poll_seconds=slack.poll_seconds,
                )
                notifier.start()
                stack.push_async_callback(notifier.stop)
            log.info("approvals started", consuming=consume)
            try:
                yield
            finally:
                log.info("approvals stopping")
                running.pool = running.store = running.publisher = running.projector = None
                running.decider = None
                running.slack = None

    app = FastAPI(title="Baton approvals", version="0.1.0", lifespan=lifespan)
    checks: dict[str, ReadinessCheck] = {"postgres": running.postgres_ready}
    if publisher is None:
        checks["kafka_producer"] = running.producer_ready
    if consume:
        checks["kafka_consumer"] = running.consumer_ready
    app.include_router(operations_router(checks))
    auth = authenticator or authenticator_of(settings.auth)
    app.include_router(identity_router(Gatekeeper(auth)))
    app.include_router(
        approvals_router(
            store=running.gate_store,
            decider=running.gate_decider,
            authenticator=auth,
            retry_after_seconds=settings.retry_after_seconds,
        )
    )
    if slack.enabled:
        app.include_router(
            slack_router(
                settings=slack,
                require_comment=settings.deny_requires_comment,
                store=running.gate_store,
                decider=running.gate_decider,
                slack=running.slack_client,
            )
        )
    if settings.inbox.enabled:
        app.include_router(
            inbox_router(
                settings=settings.inbox,
                store=running.gate_store,
                decider=running.gate_decider,
                authenticator=auth,
                deny_requires_comment=settings.deny_requires_comment,
            )
        )
    return app


def run() -> None:
    """Console entry point ``baton-approvals``."""
    settings = ApprovalsSettings()
    configure_logging(CLIENT_ID, settings.log_level)
    configure_tracing(SERVICE)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
    )
