"""The scheduler's operator API: ask for a run to be cancelled.

The API only appends a ``CancelRun`` command to ``baton.commands`` (DESIGN.md rule 1);
the decider answers it like any other command — ``RunCancelled``, ``CompensationStarted``
or a ``CommandRejected`` naming the reason (unknown run, run already finished) — so the
answer is 202 with the command's id, and the outcome is read from the run's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from baton_common.commands import CancelRun
from baton_common.kafka import outbound, to_envelope
from baton_common.settings import TopicSettings

__all__ = ["CancelAccepted", "CancelRequest", "operator_router"]

SOURCE = "baton/scheduler-api"


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="why the run is stopped")
    requested_by: str = Field(min_length=1, max_length=200, description="who asks")
    compensate: bool = Field(
        default=False, description="undo completed steps (their `compensate`) before stopping"
    )


class CancelAccepted(BaseModel):
    command_id: str
    run_id: str


def operator_router(
    topics: TopicSettings, producer: Callable[[], AIOKafkaProducer | None]
) -> APIRouter:
    """``POST /runs/{run_id}/cancel``; ``producer`` gives the started plain producer, or
    None while the service starts."""
    router = APIRouter()

    @router.post("/runs/{run_id}/cancel", status_code=202)
    async def cancel(
        run_id: Annotated[str, Path(min_length=1, max_length=200)], body: CancelRequest
    ) -> CancelAccepted:
        client = producer()
        if client is None:
            raise HTTPException(503, "the scheduler is starting; try again shortly")
        command = CancelRun(
            run_id=run_id,
            reason=body.reason,
            requested_by=body.requested_by,
            compensate=body.compensate,
        )
        command_id = str(uuid.uuid4())
        envelope = to_envelope(
            command,
            id=command_id,
            source=SOURCE,
            time=datetime.now(UTC),
            subject=run_id,
            actor=body.requested_by,
            correlationid=run_id,
        )
        try:
            await outbound(topics.commands, run_id, envelope).send(client)
        except KafkaError as exc:
            raise HTTPException(503, f"could not append the command: {exc}") from exc
        return CancelAccepted(command_id=command_id, run_id=run_id)

    return router
