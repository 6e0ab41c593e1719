"""Wiring of the executor: the only place that builds Kafka and HTTP clients and the app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, CookiePolicy
from typing import Final

import aiohttp
import httpx
import structlog
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from httpx_aiohttp import AiohttpTransport
from prometheus_client import REGISTRY, CollectorRegistry

from baton_common.auth import Gatekeeper, authenticator_of, identity_router
from baton_common.heap import release_heap, settle_heap
from baton_common.kafka import make_consumer, make_producer
from baton_common.lag import watch_lag
from baton_common.readiness import kafka_reachable
from baton_common.service import configure_logging, operations_router
from baton_common.telemetry import configure_tracing
from baton_executor.actions import Action
from baton_executor.actions.ai.agent import AgentAction
from baton_executor.actions.ai.registry import Providers
from baton_executor.actions.ai.verdict import VerdictAction
from baton_executor.actions.email import EmailAction
from baton_executor.actions.http import HttpAction
from baton_executor.actions.http1 import Http1Client
from baton_executor.actions.mcp import McpCallAction, McpServers, McpToolbox
from baton_executor.actions.slack import SlackAction
from baton_executor.actions.transform import TransformAction
from baton_executor.consumer import Executor, RebalanceListener
from baton_executor.guard import CircuitBreaker, NetworkPolicy, OutboundGuard
from baton_executor.metrics import ExecutorMetrics
from baton_executor.policy_enforcement import enforce_policies
from baton_executor.publisher import KafkaPublisher
from baton_executor.secrets import SecretStore
from baton_executor.settings import ExecutorSettings

__all__ = [
    "PRODUCE_BATCH_BYTES",
    "build_actions",
    "build_client",
    "build_guard",
    "build_session",
    "create_app",
    "run",
]

log = structlog.get_logger(__name__)

PRODUCE_BATCH_BYTES: Final = 256 * 1024
"""Bytes of one partition's commands in one produce request (aiokafka's default: 16 KiB)."""


class _NoCookies(CookiePolicy):
    """A cookie policy that accepts no cookie and returns none."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = False

    def set_ok(self, cookie: Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: object) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: object) -> bool:
        return False

    def path_return_ok(self, path: str, request: object) -> bool:
        return False


def build_client(settings: ExecutorSettings) -> httpx.AsyncClient:
    """The shared outbound client (AI providers, Slack): redirects are never followed
    (ADR 0300), and no cookies are kept, neither by httpx nor by the aiohttp session
    under it, so no step of any run sees a cookie set during another (ADR 0321)."""
    limits = httpx.Limits(max_connections=max(100, settings.concurrency * 2))
    transport = (
        AiohttpTransport(limits=limits, trust_env=False, client=lambda: build_session(settings))
        if settings.http_transport == "aiohttp"
        else None
    )
    return httpx.AsyncClient(
        follow_redirects=False,
        limits=limits,
        transport=transport,
        cookies=CookieJar(policy=_NoCookies()),
    )


def build_session(settings: ExecutorSettings) -> aiohttp.ClientSession:
    """The ``http`` action's aiohttp session (ADR 0320): the transport ``build_client``
    wraps, without httpx's layer. Same pool size, keep-alive and trust (httpx's CA
    bundle, no proxies from the environment); no cookie jar, so no step sees another's
    cookies; no timeout of its own (the action bounds each request)."""
    limits = httpx.Limits(max_connections=max(100, settings.concurrency * 2))
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry or 0,
        ssl=httpx.create_ssl_context(trust_env=False),
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
    )


def build_guard(
    settings: ExecutorSettings, metrics: ExecutorMetrics | None = None
) -> OutboundGuard:
    """The SSRF policy, per-host limits and circuit breaker every outbound request passes."""
    return OutboundGuard(
        NetworkPolicy(settings.allowed_networks),
        CircuitBreaker(
            threshold=settings.breaker_threshold,
            reset_seconds=settings.breaker_reset_seconds,
            gauge=metrics.circuit if metrics is not None else None,
        ),
        per_host_concurrency=settings.per_host_concurrency,
    )


def build_actions(
    settings: ExecutorSettings,
    client: httpx.AsyncClient,
    guard: OutboundGuard | None = None,
    secrets: SecretStore | None = None,
    session: aiohttp.ClientSession | Http1Client | None = None,
) -> dict[str, Action]:
    """The action registry: every action kind this executor runs, by name.

    ``session``, if given, carries the ``http`` action's requests instead of ``client``.
    """
    guard = guard or build_guard(settings)
    secrets = secrets or SecretStore({})
    providers = Providers(
        settings.ai_providers,
        default=settings.ai_default_provider,
        client=client,
        guard=guard,
        secrets=secrets,
    )
    actions: dict[str, Action] = {
        "transform": TransformAction(),
        "ai.classify": VerdictAction(providers, mode="classify"),
        "ai.extract": VerdictAction(providers, mode="extract"),
        "notify.slack": SlackAction(
            client,
            api_url=settings.slack_api_url,
            token_secret=settings.slack_token_secret,
            secrets=secrets,
            guard=guard,
        ),
        "notify.email": EmailAction(settings.smtp, secrets),
        "http": HttpAction(
            session or client,
            guard=guard,
            max_response_bytes=settings.max_response_bytes,
            max_timeout_seconds=settings.max_action_timeout_seconds,
        ),
    }
    mcp = McpServers(settings.mcp_servers)
    actions["mcp.call"] = McpCallAction(mcp)
    # The agent's tools are the other actions (never the AI ones: no recursion), checked
    # against the agent step's policy grant like any step (ADR 0910).
    actions = enforce_policies(actions)
    actions["ai.agent"] = enforce_policies(
        {"ai.agent": AgentAction(providers, dict(actions), McpToolbox(mcp))}
    )["ai.agent"]
    return actions


@dataclass
class _Runtime:
    """What the lifespan started, for the readiness checks."""

    consumer: AIOKafkaConsumer | None = None
    loop: asyncio.Task[None] | None = None
    producer: AIOKafkaProducer | None = None


def create_app(settings: ExecutorSettings, *, registry: CollectorRegistry = REGISTRY) -> FastAPI:
    """The executor app: the task consumer plus ``/healthz``, ``/readyz`` and ``/metrics``.

    Kafka and HTTP clients are created and started in the app's lifespan.
    """
    metrics = ExecutorMetrics(registry)
    publisher = KafkaPublisher()
    runtime = _Runtime()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bootstrap = settings.kafka_bootstrap
        async with AsyncExitStack() as stack:  # unwinds in reverse, also if startup fails
            client = build_client(settings)
            stack.push_async_callback(client.aclose)
            session: aiohttp.ClientSession | Http1Client | None = None
            if settings.http_transport == "aiohttp":
                session = build_session(settings)
                if settings.http_lean:
                    session = Http1Client(session, max_idle_per_host=settings.concurrency * 2)
                stack.push_async_callback(session.close)
            # One command per attempt, acknowledged before the attempt ends: while a produce
            # request is out, a partition's next records gather in one batch, and a full
            # batch makes every further send wait for its drain (ADR 0340).
            producer = make_producer(
                bootstrap, client_id="baton-executor", max_batch_size=PRODUCE_BATCH_BYTES
            )
            stack.push_async_callback(producer.stop)
            stack.callback(publisher.attach, None)
            consumer = make_consumer(
                bootstrap, group_id=settings.group_id, client_id="baton-executor"
            )
            stack.push_async_callback(consumer.stop)
            secrets = SecretStore(os.environ, settings.secrets_dir)
            executor = Executor(
                consumer=consumer,
                publisher=publisher,
                actions=build_actions(
                    settings, client, build_guard(settings, metrics), secrets, session
                ),
                topics=settings.topics,
                metrics=metrics,
                concurrency=settings.concurrency,
                max_output_bytes=settings.max_output_bytes,
                poll_timeout_ms=settings.poll_timeout_ms,
                error_backoff_seconds=settings.error_backoff_seconds,
                revoke_grace_seconds=settings.revoke_grace_seconds,
                secrets=secrets,
                recent_attempts=settings.recent_attempts,
            )
            topics = [settings.topics.task_topic(q) for q in settings.queues]
            consumer.subscribe(topics, listener=RebalanceListener(executor))
            await producer.start()
            publisher.attach(producer)
            runtime.producer = producer
            await consumer.start()
            loop = asyncio.create_task(executor.run(), name="baton-executor")
            lag = watch_lag(consumer, "executor")
            runtime.consumer, runtime.loop = consumer, loop

            async def stop() -> None:
                runtime.consumer, runtime.loop = None, None
                lag.cancel()
                loop.cancel()
                with suppress(asyncio.CancelledError):
                    await loop
                # Finish (or give back) running attempts while Kafka clients still work.
                await executor.drain(settings.shutdown_grace_seconds)

            stack.push_async_callback(stop)
            # Start-up's objects out of the collector's sight (full collections walked them,
            # ~200 ms each, ADR 0330); young collections every 700 net allocations walked
            # the attempts in flight again and again (~5% of a step's CPU, ADR 0340).
            stack.callback(release_heap, settle_heap(settings.gc_threshold))
            log.info("executor started", topics=topics, bootstrap=bootstrap)
            yield
        log.info("executor stopped")

    async def producer_started() -> str | None:
        if not publisher.started:
            return "the Kafka producer is not started"
        return await kafka_reachable(runtime.producer)

    async def consuming() -> str | None:
        if runtime.loop is None or runtime.loop.done() or runtime.consumer is None:
            return "the executor loop is not running"
        if not runtime.consumer.assignment():
            return (
                "no task partitions assigned (joining the group, or more executors than partitions)"
            )
        return None

    app = FastAPI(title="baton-executor", lifespan=lifespan)
    app.include_router(identity_router(Gatekeeper(authenticator_of(settings.auth))))
    app.include_router(
        operations_router(
            {"kafka_producer": producer_started, "task_consumer": consuming}, registry
        )
    )
    return app


def run() -> None:
    """Entry point of ``baton-executor`` and ``python -m baton_executor``."""
    settings = ExecutorSettings()
    configure_logging("executor", settings.log_level)
    configure_tracing("executor")
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None
    )
