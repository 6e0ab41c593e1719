"""What every Baton service shares at its edge: health, readiness, metrics and logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from baton_common.telemetry import add_trace_ids

__all__ = ["ReadinessCheck", "configure_logging", "operations_router"]

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when ready, or the reason it is not."""


def operations_router(
    checks: dict[str, ReadinessCheck], registry: CollectorRegistry = REGISTRY
) -> APIRouter:
    """``/healthz`` (process alive), ``/readyz`` (every check passes) and ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        failures: dict[str, str] = {}
        for name, check in checks.items():
            try:
                reason = await check()
            except Exception as exc:  # a failing check is a reason, never a crash
                reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                failures[name] = reason
        if failures:
            return JSONResponse({"status": "not ready", "reasons": failures}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def configure_logging(service: str, level: str) -> None:
    """Structured JSON logs on stdout, one line per record, bound to the service name.

    Records from the standard library (uvicorn, aiokafka) go through the same renderer,
    so every line of a service's log is JSON.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
