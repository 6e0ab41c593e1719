"""The governance routes of the audit API: past policy decisions and story approvals.

No ``from __future__ import annotations``: FastAPI resolves the route signatures.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from baton_audit.governance import (
    DecisionFilter,
    PolicyDecisionRow,
    StoryApprovalRow,
    policy_decisions,
    story_approvals,
)
from baton_audit.store import AuditStore
from baton_common.auth import AUTH_RESPONSES, Gatekeeper, Role

__all__ = ["governance_router"]


class DecisionList(BaseModel):
    items: list[PolicyDecisionRow]


class ApprovalList(BaseModel):
    items: list[StoryApprovalRow]


def governance_router(*, store: Callable[[], AuditStore], gatekeeper: Gatekeeper) -> APIRouter:
    """``/policy-decisions`` and ``/story-approvals``; reading them needs the ``viewer`` role."""
    Store = Annotated[AuditStore, Depends(store)]
    router = APIRouter(
        responses=AUTH_RESPONSES, dependencies=[Depends(gatekeeper.require(Role.VIEWER))]
    )

    @router.get("/policy-decisions", tags=["governance"])
    async def list_decisions(
        audit: Store,
        policy_id: str | None = None,
        policy_version: int | None = None,
        outcome: Literal["allow", "deny"] | None = None,
        story_id: str | None = None,
        rule: str | None = None,
        since: Annotated[datetime | None, Query(description="ISO time, inclusive")] = None,
        until: Annotated[datetime | None, Query(description="ISO time, exclusive")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> DecisionList:
        """Policy decisions recorded in the log, newest first: e.g. what policy `default`
        version 2 denied last month is `?policy_id=default&policy_version=2&outcome=deny
        &since=…&until=…`."""
        where = DecisionFilter(
            policy_id=policy_id,
            policy_version=policy_version,
            outcome=outcome,
            story_id=story_id,
            rule=rule,
            since=since,
            until=until,
            limit=limit,
        )
        return DecisionList(items=await policy_decisions(audit.pool, where))

    @router.get("/story-approvals", tags=["governance"])
    async def list_story_approvals(audit: Store, story_id: str | None = None) -> ApprovalList:
        """Change-control approvals of draft story versions: who approved, and when."""
        return ApprovalList(items=await story_approvals(audit.pool, story_id))

    return router
