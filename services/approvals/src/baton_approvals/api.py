"""The approvals HTTP API: the inbox, and decisions that become ``DecideApproval`` commands.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures,
whose dependency aliases are local to :func:`approvals_router`.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from baton_approvals.decisions import Decider, DecisionRefused
from baton_approvals.gates import Decision, Gate, GateDetail, StateFilter
from baton_approvals.identity import principals
from baton_approvals.store import GateStore
from baton_common.auth import AUTH_RESPONSES, Authenticator, Gatekeeper, Identity, Role

__all__ = ["DecisionAccepted", "DecisionRequest", "GateList", "approvals_router"]


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
    approver: str
    requested_at: datetime


def approvals_router(
    *,
    store: Callable[[], GateStore],
    decider: Callable[[], Decider],
    authenticator: Authenticator,
    retry_after_seconds: int = 5,
) -> APIRouter:
    """The ``/approvals`` routes: reading needs the ``viewer`` role, deciding ``approver``
    (and being one of the gate's approvers, by name or group).

    Args:
        store: gives the inbox (a dependency, so it can be built at startup).
        decider: gives what turns decisions into commands.
        authenticator: turns bearer tokens into identities.
        retry_after_seconds: the ``Retry-After`` of a 503 when Kafka is unavailable.
    """
    gatekeeper = Gatekeeper(authenticator)
    Viewer = Annotated[Identity, Depends(gatekeeper.require(Role.VIEWER))]
    Approver = Annotated[Identity, Depends(gatekeeper.require(Role.APPROVER))]
    Store = Annotated[GateStore, Depends(store)]
    Deciding = Annotated[Decider, Depends(decider)]
    router = APIRouter(prefix="/approvals", tags=["approvals"], responses=AUTH_RESPONSES)

    @router.get("")
    async def list_approvals(
        identity: Viewer,
        gates: Store,
        state: Annotated[
            StateFilter | None, Query(description="a gate state, or `decided` for history")
        ] = None,
        group: Annotated[str | None, Query(description="gates naming group:<group>")] = None,
        mine: Annotated[bool, Query(description="only gates the caller may decide")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> GateList:
        """Approval gates, newest first; decided gates most recently closed first."""
        found = await gates.find(
            state=state,
            group=group,
            decidable_by=principals(identity) if mine else None,
            limit=limit,
        )
        return GateList(items=found)

    @router.get("/{gate_id}", responses={404: {"description": "unknown gate"}})
    async def get_approval(gate_id: str, identity: Viewer, gates: Store) -> GateDetail:
        """One gate, with every decision asked for on it through this service."""
        gate = await gates.detail(gate_id)
        if gate is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no approval gate {gate_id}")
        return gate

    @router.post(
        "/{gate_id}/decision",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            403: {"description": "the caller lacks the approver role or is not an approver"},
            404: {"description": "unknown gate"},
            409: {"description": "the gate is not pending, or the caller already decided it"},
            422: {"description": "a bad body, or a deny without the required comment"},
            503: {"description": "the decision could not be recorded in Kafka; retry"},
        },
    )
    async def decide(
        gate_id: str, body: DecisionRequest, identity: Approver, deciding: Deciding
    ) -> DecisionAccepted:
        """Ask the scheduler to approve or deny a gate.

        202 means the ``DecideApproval`` command is durable in Kafka; the gate's state
        changes when the scheduler has validated it and closed the gate.
        """
        try:
            record = await deciding.decide(
                gate_id, identity, body.decision, body.comment, channel="api"
            )
        except DecisionRefused as refused:
            headers = (
                {"Retry-After": str(retry_after_seconds)} if refused.kind == "unavailable" else None
            )
            raise HTTPException(refused.status, refused.reason, headers=headers) from refused
        return DecisionAccepted(
            gate_id=gate_id,
            command_id=record.command_id,
            decision=record.decision,
            approver=record.approver,
            requested_at=record.requested_at,
        )

    return router
