"""Builds the scheduler: Kafka clients, the engine, the story catalog and the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from baton_common.auth import Gatekeeper, authenticator_of, identity_router
from baton_common.catalog import StoryCatalog, follow_stories
from baton_common.kafka import make_consumer, make_producer
from baton_common.lag import watch_lag
from baton_common.policy_catalog import PolicyCatalog, follow_policies
from baton_common.readiness import kafka_reachable
from baton_common.service import configure_logging, operations_router
from baton_common.telemetry import configure_tracing
from baton_scheduler import metrics, txn_retry
from baton_scheduler.api import RunOwner, operator_router
from baton_scheduler.engine import Engine
from baton_scheduler.settings import SchedulerSettings

__all__ = ["create_app", "run"]

log = structlog.get_logger(__name__)


def create_app(settings: SchedulerSettings) -> FastAPI:
    """The scheduler's app; its lifespan runs the command loop."""
    catalog = StoryCatalog()
    catalog_ready = asyncio.Event()
    policies = PolicyCatalog()
    policies_ready = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    engine_box: list[Engine] = []
    producer_box: list[AIOKafkaProducer] = []
    producers: list[AIOKafkaProducer] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bootstrap = settings.kafka_bootstrap
        stories = make_consumer(
            bootstrap, settings.topics.stories, group_id=None, client_id="baton-scheduler-stories"
        )
        # a short fetch wait also makes recovery's seeks and offset lookups answer quickly
        recovery = make_consumer(
            bootstrap,
            group_id=None,
            client_id="baton-scheduler-recovery",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        consumer = make_consumer(
            bootstrap,
            group_id=settings.group_id,
            client_id="baton-scheduler",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        txn_retry.install()  # a refused AddOffsetsToTxn is asked again after 2 ms
        producer = make_producer(
            bootstrap,
            client_id="baton-scheduler",
            transactional_id=settings.transactional_id,
            linger_ms=settings.linger_ms,
            retry_backoff_ms=settings.retry_backoff_ms,
            max_batch_size=settings.batch_bytes,
        )
        # FireTimer commands go out on their own plain producer: the transactional one
        # only sends inside a command batch's transaction
        timer_producer = make_producer(bootstrap, client_id="baton-scheduler-timers")
        policy_records = make_consumer(
            bootstrap, settings.topics.policies, group_id=None, client_id="baton-scheduler-policies"
        )
        for client in (stories, policy_records, recovery, producer, timer_producer):
            await client.start()
        producer_box.append(timer_producer)  # operator commands go out on it too
        engine = Engine(
            consumer=consumer,
            producer=producer,
            recovery_consumer=recovery,
            catalog=catalog,
            topics=settings.topics,
            group_id=settings.group_id,
            story_wait_seconds=settings.story_wait_seconds,
            timer_producer=timer_producer,
            timer_resend_seconds=settings.timer_resend_seconds,
            snapshot_every=settings.snapshot_every,
            max_batch=settings.max_batch,
            policies=policies,
        )
        engine_box.append(engine)
        producers.append(producer)
        tasks.append(asyncio.create_task(follow_stories(stories, catalog, catalog_ready)))
        tasks.append(
            asyncio.create_task(
                follow_policies(policy_records, settings.topics.policies, policies, policies_ready)
            )
        )
        await catalog_ready.wait()
        await policies_ready.wait()
        engine.subscribe()
        await consumer.start()
        tasks.append(asyncio.create_task(_supervise(engine)))
        tasks.append(asyncio.create_task(engine.timers.run()))
        tasks.append(watch_lag(consumer, "scheduler"))
        log.info("scheduler started", port=settings.http_port)
        try:
            yield
        finally:
            producer_box.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in (consumer, producer, timer_producer, recovery, stories, policy_records):
                await client.stop()

    async def kafka() -> str | None:
        return await kafka_reachable(producers[0] if producers else None)

    async def ready() -> str | None:
        if not catalog_ready.is_set():
            return "story catalog is loading"
        if not policies_ready.is_set():
            return "policy catalog is loading"
        if not engine_box or not engine_box[0].assigned:
            return "no baton.commands partitions assigned yet"
        if engine_box[0].recovering:
            return "rebuilding run states"
        if any(t.done() for t in tasks):
            return "a background loop stopped"
        return None

    def run_owner(run_id: str) -> RunOwner | None:
        state = engine_box[0].store.get(run_id) if engine_box else None
        if state is None:
            return None
        story = catalog.get(state.story_id, state.story_version)
        return RunOwner(state.story_id, story.owner if story is not None else None)

    gatekeeper = Gatekeeper(authenticator_of(settings.auth))
    app = FastAPI(title="Baton scheduler", lifespan=lifespan)
    app.include_router(identity_router(gatekeeper))
    app.include_router(operations_router({"engine": ready, "kafka": kafka}))
    app.include_router(
        operator_router(
            settings.topics,
            lambda: producer_box[0] if producer_box else None,
            gatekeeper=gatekeeper,
            run_owner=run_owner,
        )
    )
    return app


async def _supervise(engine: Engine) -> None:
    while True:
        metrics.RUNS_IN_MEMORY.set(len(engine.store))
        try:
            await engine.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("command loop failed")
            raise


def run() -> None:
    settings = SchedulerSettings()
    configure_logging("scheduler", settings.log_level)
    configure_tracing("scheduler")
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None
    )
