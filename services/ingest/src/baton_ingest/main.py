"""Wiring of the ingest service: the only place that builds Kafka clients and the app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import datetime, timedelta

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from baton_common.auth import Gatekeeper, authenticator_of, identity_router
from baton_common.catalog import StoryCatalog, follow_stories
from baton_common.heap import settle_heap
from baton_common.kafka import ConsumedRecord, make_consumer, make_producer, read_to_end
from baton_common.lag import watch_lag
from baton_common.readiness import kafka_reachable
from baton_common.service import configure_logging, operations_router
from baton_common.telemetry import configure_tracing
from baton_ingest.api import WebhookFastPath, webhook_endpoint, webhook_routes
from baton_ingest.consumer import IngestRouter
from baton_ingest.corked import CorkedHttpTools
from baton_ingest.metrics import IngestMetrics
from baton_ingest.publisher import KafkaPublisher
from baton_ingest.secrets import EnvironmentSecrets, SecretResolver
from baton_ingest.settings import IngestSettings
from baton_ingest.ticker import Ticker, load_cursors

__all__ = ["create_app", "run"]

log = structlog.get_logger(__name__)


def create_app(
    settings: IngestSettings,
    *,
    registry: CollectorRegistry = REGISTRY,
    secrets: SecretResolver | None = None,
) -> FastAPI:
    """The ingest app: webhook intake, the story catalog and the ingest router.

    Kafka clients are created and started in the app's lifespan.

    Args:
        settings: the service's settings.
        registry: where the service's metrics are registered and served from.
        secrets: resolves webhook signing secrets; by default ``BATON_SECRET_*`` variables.
    """
    catalog = StoryCatalog()
    catalog_ready = asyncio.Event()
    # Webhook records linger in the publisher's own batches (ADR 0250), not the producer's.
    publisher = KafkaPublisher(linger_seconds=settings.webhook_linger_ms / 1000)
    metrics = IngestMetrics(registry)
    tasks: dict[str, asyncio.Task[None]] = {}
    producers: list[AIOKafkaProducer] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bootstrap = settings.kafka_bootstrap
        async with AsyncExitStack() as stack:  # unwinds in reverse, also if startup fails
            producer = make_producer(
                bootstrap,
                client_id="baton-ingest",
                linger_ms=0,
                max_batch_size=settings.webhook_batch_bytes,
            )
            stack.push_async_callback(producer.stop)
            lanes = [  # more connections for the webhooks' batches (ADR 0260)
                make_producer(
                    bootstrap,
                    client_id=f"baton-ingest-webhooks-{n}",
                    linger_ms=0,
                    max_batch_size=settings.webhook_batch_bytes,
                )
                for n in range(1, settings.webhook_producers)
            ]
            for lane in lanes:
                stack.push_async_callback(lane.stop)
            stories = make_consumer(
                bootstrap, settings.topics.stories, group_id=None, client_id="baton-ingest-stories"
            )
            stack.push_async_callback(stories.stop)
            ingest = None
            router_publisher = KafkaPublisher()
            if settings.router_enabled:
                # The router's own producer, with large batches (ADR 0221): the webhooks'
                # single records keep the default, whose batches fill and leave sooner.
                router_producer = make_producer(
                    bootstrap,
                    client_id="baton-ingest-router",
                    max_batch_size=settings.router_producer_batch_bytes,
                )
                stack.push_async_callback(router_producer.stop)
                ingest = make_consumer(
                    bootstrap,
                    settings.topics.ingest,
                    group_id=settings.router_group,
                    client_id="baton-ingest-router",
                    max_partition_fetch_bytes=settings.router_fetch_partition_bytes,
                    fetch_min_bytes=settings.router_fetch_min_bytes,
                    fetch_max_wait_ms=settings.router_fetch_max_wait_ms,
                )
                stack.push_async_callback(ingest.stop)
            await producer.start()
            for lane in lanes:
                await lane.start()
            await stories.start()
            if ingest is not None:
                await router_producer.start()
                router_publisher.attach(router_producer)
                stack.callback(router_publisher.attach, None)
                await ingest.start()
            cursors = await _read_cursors(bootstrap, settings.topics.schedules)
            publisher.attach(producer, lanes)
            stack.callback(publisher.attach, None)
            producers[:] = [producer]
            stack.callback(producers.clear)
            ticker = Ticker(
                catalog=catalog,
                catalog_ready=catalog_ready,
                publisher=publisher,
                topics=settings.topics,
                metrics=metrics,
                cursors=cursors,
                interval=settings.schedule_interval_seconds,
                grace=timedelta(seconds=settings.schedule_grace_seconds),
            )
            stack.push_async_callback(_cancel_all, tasks)
            tasks["stories"] = asyncio.create_task(
                _supervise(
                    "story catalog",
                    lambda: follow_stories(stories, catalog, catalog_ready),
                    settings.error_backoff_seconds,
                ),
                name="baton-ingest-stories",
            )
            if ingest is not None:
                router = IngestRouter(
                    consumer=ingest,
                    publisher=router_publisher,
                    catalog=catalog,
                    catalog_ready=catalog_ready,
                    topics=settings.topics,
                    metrics=metrics,
                    poll_timeout_ms=settings.poll_timeout_ms,
                    max_records=settings.router_batch_records,
                    error_backoff_seconds=settings.error_backoff_seconds,
                )
                tasks["router"] = asyncio.create_task(
                    _supervise("ingest router", router.run, settings.error_backoff_seconds),
                    name="baton-ingest-router",
                )
                tasks["lag"] = watch_lag(ingest, "ingest-router")
            tasks["schedules"] = asyncio.create_task(
                _supervise("schedule loop", ticker.run, settings.error_backoff_seconds),
                name="baton-ingest-schedules",
            )
            log.info("ingest started", bootstrap=bootstrap)
            yield
        log.info("ingest stopped")

    async def producer_started() -> str | None:
        if not publisher.started:
            return "the Kafka producer is not started"
        return await kafka_reachable(producers[0] if producers else None)

    async def catalog_loaded() -> str | None:
        return None if catalog_ready.is_set() else "the story catalog is still loading"

    async def router_running() -> str | None:
        if not settings.router_enabled:
            return None
        task = tasks.get("router")
        if task is None or task.done():
            return "the ingest router is not running"
        return None

    app = FastAPI(title="baton-ingest", lifespan=lifespan)
    app.include_router(identity_router(Gatekeeper(authenticator_of(settings.auth))))
    receive_webhook = webhook_endpoint(
        settings=settings,
        catalog=catalog,
        catalog_ready=catalog_ready,
        publisher=publisher,
        secrets=secrets if secrets is not None else EnvironmentSecrets(os.environ),
        metrics=metrics,
    )
    app.include_router(webhook_routes(receive_webhook))
    app.add_middleware(WebhookFastPath, endpoint=receive_webhook)
    app.state.receive_webhook = receive_webhook
    app.include_router(
        operations_router(
            {
                "kafka_producer": producer_started,
                "story_catalog": catalog_loaded,
                "ingest_router": router_running,
            },
            registry,
        )
    )
    return app


async def _read_cursors(bootstrap: str, topic: str, within: float = 30.0) -> dict[str, datetime]:
    """Where each scheduled story's ticks were handled up to, from ``baton.schedules``."""
    consumer = make_consumer(bootstrap, topic, group_id=None, client_id="baton-ingest-schedules")
    await consumer.start()
    try:

        async def read() -> list[ConsumedRecord]:
            return [record async for record in read_to_end(consumer)]

        try:
            records = await asyncio.wait_for(read(), within)
        except TimeoutError as exc:
            raise RuntimeError(
                f"could not read {topic} within {within}s; is it provisioned (baton topics)?"
            ) from exc
    finally:
        await consumer.stop()
    return load_cursors(records)


async def _cancel_all(tasks: dict[str, asyncio.Task[None]]) -> None:
    for task in tasks.values():
        task.cancel()
    for task in tasks.values():
        with suppress(asyncio.CancelledError):
            await task
    tasks.clear()


async def _supervise(name: str, loop: Callable[[], Awaitable[None]], backoff: float) -> None:
    """Run a background loop; if it ever fails, log why and start it again."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("background loop failed; restarting", loop=name)
            await asyncio.sleep(backoff)


def run() -> None:
    """Entry point of ``baton-ingest`` and ``python -m baton_ingest``."""
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    configure_tracing("ingest")
    # No access log: a JSON line per webhook costs more than the webhook (ADR 0210);
    # refusals are logged and everything is counted in the metrics.
    app = create_app(settings)
    # Every object alive now (modules, models, templates, the app) out of the collector's
    # reach: a full collection, which the router's and webhooks' allocations set off
    # often, no longer walks them (ADR 0230; the scheduler does the same, ADR 0120).
    settle_heap(settings.gc_threshold)
    # Webhooks first, before FastAPI's own layers too (ADR 0220): the same endpoint and
    # error bodies; an unexpected error is uvicorn's 500, as the server-error layer's.
    uvicorn.run(
        WebhookFastPath(app, app.state.receive_webhook),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # nothing reads the client's address; a scan per request
        http=CorkedHttpTools,  # an answer's head and body in one write (ADR 0250)
    )
