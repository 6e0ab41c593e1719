"""The approvals HTTP API: the inbox, and decisions that become ``DecideApproval`` commands.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures,
whose dependency aliases are local to :func:`approvals_router`.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Final
from uuid import uuid4

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from baton_approvals.gates import Decision, Gate, GateState, decision_envelope
from baton_approvals.identity import (
    AuthenticationError,
    Authenticator,
    Identity,
    may_decide,
    principals,
)
from baton_approvals.metrics import DECISIONS
from baton_approvals.publish import Publisher, PublishError
from baton_approvals.store import GateStore
from baton_common.kafka import outbound

__all__ = ["DecisionAccepted", "DecisionRequest", "GateList", "approvals_router"]

log = structlog.get_logger(__name__)

_BEARER: Final = HTTPBearer(auto_error=False, description="a token issued to one person")
_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    comment: str | None = Field(default=None, max_length=4000)


class GateList(BaseModel):
    items: list[Gate]


class DecisionAccepted(BaseModel):
    gate_id: str
    command_id: str
    decision: Decision


def approvals_router(
    *,
    store: Callable[[], GateStore],
    publisher: Callable[[], Publisher],
    authenticator: Authenticator,
    commands_topic: str,
    retry_after_seconds: int = 5,
) -> APIRouter:
    """The ``/approvals`` routes; every route needs a bearer token.

    Args:
        store: gives the inbox (a dependency, so it can be built at startup).
        publisher: gives where ``DecideApproval`` commands go.
        authenticator: turns bearer tokens into identities.
        commands_topic: the ``baton.commands`` topic name.
        retry_after_seconds: the ``Retry-After`` of a 503 when Kafka is unavailable.
    """

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Identity:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token: send Authorization: Bearer <token>",
                headers=_CHALLENGE,
            )
        try:
            return await authenticator.authenticate(credentials.credentials)
        except AuthenticationError as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, f"invalid bearer token: {exc}", headers=_CHALLENGE
            ) from exc

    Caller = Annotated[Identity, Depends(caller)]
    Store = Annotated[GateStore, Depends(store)]
    Commands = Annotated[Publisher, Depends(publisher)]
    router = APIRouter(prefix="/approvals", tags=["approvals"])

    @router.get("")
    async def list_approvals(
        identity: Caller,
        gates: Store,
        state: GateState | None = None,
        group: Annotated[str | None, Query(description="gates naming group:<group>")] = None,
        mine: Annotated[bool, Query(description="only gates the caller may decide")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> GateList:
        """Approval gates, newest first."""
        found = await gates.find(
            state=state,
            group=group,
            decidable_by=principals(identity) if mine else None,
            limit=limit,
        )
        return GateList(items=found)

    @router.get("/{gate_id}", responses={404: {"description": "unknown gate"}})
    async def get_approval(gate_id: str, identity: Caller, gates: Store) -> Gate:
        gate = await gates.get(gate_id)
        if gate is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no approval gate {gate_id}")
        return gate

    @router.post(
        "/{gate_id}/decision",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            401: {"description": "missing or unknown token"},
            403: {"description": "the caller is not an approver of the gate"},
            404: {"description": "unknown gate"},
            409: {"description": "the gate is not pending"},
            503: {"description": "the decision could not be recorded in Kafka; retry"},
        },
    )
    async def decide(
        gate_id: str, body: DecisionRequest, identity: Caller, gates: Store, commands: Commands
    ) -> DecisionAccepted:
        """Ask the scheduler to approve or deny a gate.

        202 means the ``DecideApproval`` command is durable in Kafka; the gate's state
        changes when the scheduler has validated it and closed the gate.
        """
        gate = await gates.get(gate_id)
        if gate is None:
            DECISIONS.labels("not_found").inc()
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no approval gate {gate_id}")
        if not may_decide(identity, gate.approvers):
            DECISIONS.labels("forbidden").inc()
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{identity.user} is not an approver of gate {gate_id}"
                f" (approvers: {', '.join(gate.approvers)})",
            )
        if gate.state is not GateState.PENDING:
            DECISIONS.labels("conflict").inc()
            raise HTTPException(status.HTTP_409_CONFLICT, f"gate {gate_id} is {gate.state.value}")
        command_id = str(uuid4())
        now = datetime.now(UTC)
        envelope = decision_envelope(
            gate, identity, body.decision, body.comment, command_id=command_id, time=now
        )
        try:
            await commands.publish(outbound(commands_topic, gate.run_id, envelope))
        except PublishError as exc:
            DECISIONS.labels("unavailable").inc()
            log.warning("decision not published", gate_id=gate_id, error=str(exc))
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the decision could not be recorded, retry later: {exc}",
                headers={"Retry-After": str(retry_after_seconds)},
            ) from exc
        try:
            await gates.note_decision_requested(
                gate_id,
                decision=body.decision,
                requested_by=identity.user,
                requested_at=now,
                command_id=command_id,
            )
        except Exception:
            # The command is durable and is what counts; the note is informational.
            log.exception("decision published but not noted", gate_id=gate_id)
        DECISIONS.labels("accepted").inc()
        log.info(
            "decision requested",
            gate_id=gate_id,
            run_id=gate.run_id,
            decision=body.decision,
            approver=identity.user,
            command_id=command_id,
        )
        return DecisionAccepted(gate_id=gate_id, command_id=command_id, decision=body.decision)

    return router
