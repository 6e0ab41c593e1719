"""Builds the world's app (the only place clients are made) and runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from baton_world.calls import RecordCalls, calls_router
from baton_world.cases import cases_router, shop_router
from baton_world.edr import edr_router
from baton_world.enrichment import enrichment_router
from baton_world.idp import idp_router
from baton_world.llm import llm_router
from baton_world.settings import WorldSettings
from baton_world.slack import slack_router
from baton_world.state import World

__all__ = ["RunningWorld", "create_app", "run", "start_in_thread"]


def create_app(settings: WorldSettings) -> FastAPI:
    world = World.create(settings)
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await http.aclose()

    app = FastAPI(title="Baton world: outside systems for the reference stories", lifespan=lifespan)
    app.state.world = world
    for router in (
        calls_router(world.calls),
        enrichment_router(world),
        idp_router(world),
        cases_router(world),
        shop_router(world),
        llm_router(world),
        slack_router(world, http),
        edr_router(world, http),
    ):
        app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        return {"ready": True}

    app.add_middleware(RecordCalls, log=world.calls)
    return app


def run() -> None:
    settings = WorldSettings()
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning"
    )


class RunningWorld:
    """A world served from a thread of this process (tests and benchmarks)."""

    def __init__(self, settings: WorldSettings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host=settings.http_host, port=settings.http_port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    @property
    def world(self) -> World:
        world: World = self.app.state.world
        return world

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def start_in_thread(settings: WorldSettings, within: float = 15.0) -> RunningWorld:
    running = RunningWorld(settings)
    running._thread.start()
    deadline = time.monotonic() + within
    while not running._server.started:
        if time.monotonic() > deadline or not running._thread.is_alive():
            raise RuntimeError(f"the world did not start on {running.url}")
        time.sleep(0.05)
    return running
