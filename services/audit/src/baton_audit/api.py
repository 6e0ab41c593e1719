"""The audit HTTP API: runs, their timelines and approvals, and hash-chain verification.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures,
whose dependency aliases are local to :func:`audit_router`.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from baton_audit.projection import AuditStatus, RunSummary
from baton_audit.store import ApprovalRecord, AuditStore, TimelineEntry
from baton_common.hashing import verify_chain
from baton_common.state import StepState

__all__ = ["RunDetail", "RunList", "RunView", "Timeline", "Verification", "audit_router"]


class RunView(RunSummary):
    """A run with the state of each of its steps."""

    steps: dict[str, StepState]


class RunList(BaseModel):
    items: list[RunSummary]


class Timeline(BaseModel):
    items: list[TimelineEntry]


class RunDetail(BaseModel):
    run: RunView
    timeline: list[TimelineEntry]
    approvals: list[ApprovalRecord]


class Verification(BaseModel):
    run_id: str
    events: int
    intact: bool
    problem: str | None


def audit_router(*, store: Callable[[], AuditStore]) -> APIRouter:
    """The ``/runs`` routes.

    Args:
        store: gives the audit store (a dependency, so it can be built at startup).
    """
    Store = Annotated[AuditStore, Depends(store)]
    router = APIRouter(prefix="/runs", tags=["runs"])
    unknown: dict[int | str, dict[str, object]] = {
        404: {"description": "no event of this run is in the audit store"}
    }

    async def known_run(run_id: str, audit: Store) -> RunView:
        run = await audit.run(run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id} in the audit store")
        steps = run.state.steps if run.state is not None else {}
        return RunView(**run.model_dump(exclude={"state"}), steps=steps)

    Run = Annotated[RunView, Depends(known_run)]

    @router.get("")
    async def list_runs(
        audit: Store,
        story: Annotated[str | None, Query(description="a story id")] = None,
        status: AuditStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> RunList:
        """Runs, newest first."""
        return RunList(items=await audit.runs(story_id=story, status=status, limit=limit))

    @router.get("/{run_id}", responses=unknown)
    async def get_run(run: Run, audit: Store) -> RunDetail:
        """A run, its events in order and its approval gates."""
        return RunDetail(
            run=run,
            timeline=await audit.timeline(run.run_id),
            approvals=await audit.approvals(run.run_id),
        )

    @router.get("/{run_id}/timeline", responses=unknown)
    async def get_timeline(run: Run, audit: Store) -> Timeline:
        """A run's events, ordered by ``seq``."""
        return Timeline(items=await audit.timeline(run.run_id))

    @router.get("/{run_id}/verify", responses=unknown)
    async def verify_run(run: Run, audit: Store) -> Verification:
        """Check the run's hash chain: any edited, missing or reordered event breaks it."""
        envelopes = await audit.envelopes(run.run_id)
        problem = verify_chain(envelopes)
        return Verification(
            run_id=run.run_id, events=len(envelopes), intact=problem is None, problem=problem
        )

    return router
