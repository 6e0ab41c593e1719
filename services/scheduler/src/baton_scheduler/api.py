"""The scheduler's operator API: ask for a run to be cancelled.

The API only appends a ``CancelRun`` command to ``baton.commands`` (DESIGN.md rule 1);
the decider answers it like any other command — ``RunCancelled``, ``CompensationStarted``
or a ``CommandRejected`` naming the reason (unknown run, run already finished) — so the
answer is 202 with the command's id, and the outcome is read from the run's history.

Cancelling needs the ``operator`` role on the team owning the run's story (ADR 0900); the
command records the authenticated caller as ``requested_by`` and as the envelope's actor.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures,
whose dependency aliases are local to :func:`operator_router`.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from baton_common.auth import (
    ALL_TEAMS,
    AUTH_RESPONSES,
    Gatekeeper,
    Identity,
    Role,
    forbid_unless,
    story_team,
)
from baton_common.commands import CancelRun
from baton_common.kafka import outbound, to_envelope
from baton_common.settings import TopicSettings

__all__ = ["CancelAccepted", "CancelRequest", "RunOwner", "operator_router"]

SOURCE = "baton/scheduler-api"


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="why the run is stopped")
    compensate: bool = Field(
        default=False, description="undo completed steps (their `compensate`) before stopping"
    )


class CancelAccepted(BaseModel):
    command_id: str
    run_id: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class RunOwner:
    """The story a run belongs to and the team owning it (None: the story has no owner)."""

    story_id: str
    owner: str | None


def operator_router(
    topics: TopicSettings,
    producer: Callable[[], AIOKafkaProducer | None],
    *,
    gatekeeper: Gatekeeper,
    run_owner: Callable[[str], RunOwner | None],
) -> APIRouter:
    """``POST /runs/{run_id}/cancel``.

    Args:
        topics: where commands go.
        producer: gives the started plain producer, or None while the service starts.
        gatekeeper: authenticates callers.
        run_owner: the owner of a run this scheduler holds, or None when it holds no such
            run (unknown, or on another replica's partitions).
    """
    Caller = Annotated[Identity, Depends(gatekeeper.caller())]
    router = APIRouter(responses=AUTH_RESPONSES)

    def authorise(identity: Identity, run_id: str) -> None:
        found = run_owner(run_id)
        if found is not None:
            forbid_unless(identity, Role.OPERATOR, story_team(found.owner))
            return
        # Without the run its team is unknown: only an unscoped operator may ask, and the
        # decider answers an unknown run with CommandRejected in the log.
        forbid_unless(
            identity,
            Role.OPERATOR,
            ALL_TEAMS,
            context=f"run {run_id} is not held by this scheduler, so its owner team is unknown",
        )

    @router.post("/runs/{run_id}/cancel", status_code=202)
    async def cancel(
        run_id: Annotated[str, Path(min_length=1, max_length=200)],
        body: CancelRequest,
        identity: Caller,
    ) -> CancelAccepted:
        authorise(identity, run_id)
        client = producer()
        if client is None:
            raise HTTPException(503, "the scheduler is starting; try again shortly")
        command = CancelRun(
            run_id=run_id,
            reason=body.reason,
            requested_by=identity.user,
            compensate=body.compensate,
        )
        command_id = str(uuid.uuid4())
        envelope = to_envelope(
            command,
            id=command_id,
            source=SOURCE,
            time=datetime.now(UTC),
            subject=run_id,
            actor=identity.user,
            correlationid=run_id,
        )
        try:
            await outbound(topics.commands, run_id, envelope).send(client)
        except KafkaError as exc:
            raise HTTPException(503, f"could not append the command: {exc}") from exc
        return CancelAccepted(command_id=command_id, run_id=run_id, requested_by=identity.user)

    return router
