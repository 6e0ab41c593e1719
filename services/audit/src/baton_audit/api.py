"""The audit HTTP API: runs, timelines, steps, stories, exports and hash-chain verification.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures,
whose dependency aliases are local to :func:`audit_router`.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi import status as http
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from baton_audit.export import CSV_COLUMNS, ExportFormat, ExportRange, evidence_bundle
from baton_audit.export import stream_events as _stream_events
from baton_audit.projection import AuditStatus, RunSummary
from baton_audit.store import (
    AiRecord,
    ApprovalRecord,
    AttemptRecord,
    AuditStore,
    CursorError,
    RunFilter,
    RunPage,
    StoryVersion,
    TimelineEntry,
)
from baton_common.auth import ALL_TEAMS, AUTH_RESPONSES, Gatekeeper, Role
from baton_common.envelope import Envelope
from baton_common.hashing import BreakKind, find_break
from baton_common.state import StepState

__all__ = [
    "Admin",
    "RunDetail",
    "RunView",
    "StepDetail",
    "Timeline",
    "Verification",
    "audit_router",
]


class RunView(RunSummary):
    """A run with the state of each of its steps."""

    steps: dict[str, StepState]


class Timeline(BaseModel):
    items: list[TimelineEntry]


class EventList(BaseModel):
    """A run's events exactly as written (CloudEvents), in log order."""

    items: list[Envelope]


class RunDetail(BaseModel):
    run: RunView
    timeline: list[TimelineEntry]
    approvals: list[ApprovalRecord]


class StepDetail(BaseModel):
    """One step of a run: its state, every attempt, its approval gates and AI interactions."""

    run_id: str
    step: str
    state: StepState | None
    attempts: list[AttemptRecord]
    approvals: list[ApprovalRecord]
    ai_interactions: list[AiRecord]


class StoryList(BaseModel):
    items: list[StoryVersion]


class Verification(BaseModel):
    run_id: str
    events: int
    intact: bool
    problem: str | None
    kind: BreakKind | None = None
    """What the first break suggests: edited, deleted, reordered or inserted."""


@dataclass(frozen=True, slots=True)
class Admin:
    """What the admin routes need from the running service."""

    rebuild: Callable[[], Awaitable[None]]
    checksum: Callable[[], Awaitable[tuple[str, dict[str, int]]]]
    positions: Callable[[], Awaitable[dict[str, dict[int, int]]]]


class Checksum(BaseModel):
    checksum: str
    rows: dict[str, int]


class Positions(BaseModel):
    """Next offset to apply per topic and partition, as stored with the projection."""

    positions: dict[str, dict[int, int]]


def audit_router(
    *, store: Callable[[], AuditStore], admin: Callable[[], Admin], gatekeeper: Gatekeeper
) -> APIRouter:
    """The ``/runs``, ``/stories``, ``/export`` and ``/admin`` routes.

    Reading history needs the ``viewer`` role (on any team); ``/admin`` needs an unscoped
    ``admin`` grant.

    Args:
        store: gives the audit store (a dependency, so it can be built at startup).
        admin: gives the admin operations of the running service.
        gatekeeper: authenticates callers and checks their roles.
    """
    viewer = [Depends(gatekeeper.require(Role.VIEWER))]
    admins = [Depends(gatekeeper.require(Role.ADMIN, team=ALL_TEAMS))]
    Store = Annotated[AuditStore, Depends(store)]
    Ops = Annotated[Admin, Depends(admin)]
    router = APIRouter(responses=AUTH_RESPONSES)
    unknown: dict[int | str, dict[str, object]] = {
        404: {"description": "no event of this run is in the audit store"}
    }

    async def known_run(run_id: str, audit: Store) -> RunView:
        run = await audit.run(run_id)
        if run is None:
            raise HTTPException(http.HTTP_404_NOT_FOUND, f"no run {run_id} in the audit store")
        steps = run.state.steps if run.state is not None else {}
        return RunView(**run.model_dump(exclude={"state"}), steps=steps)

    Run = Annotated[RunView, Depends(known_run)]

    @router.get(
        "/runs",
        tags=["runs"],
        responses={400: {"description": "a bad cursor"}},
        dependencies=viewer,
    )
    async def list_runs(
        audit: Store,
        story: Annotated[str | None, Query(description="a story id")] = None,
        version: Annotated[int | None, Query(description="a story version", ge=1)] = None,
        status: AuditStatus | None = None,
        since: Annotated[datetime | None, Query(description="started at or after")] = None,
        until: Annotated[datetime | None, Query(description="started before")] = None,
        correlation_id: Annotated[
            str | None, Query(description="correlation id or dedup key, e.g. an alert id")
        ] = None,
        actor: Annotated[
            str | None, Query(description="caused an event of the run, or decided a gate")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
    ) -> RunPage:
        """Runs, newest first, a page at a time; follow ``next_cursor`` for the next page."""
        where = RunFilter(
            story_id=story,
            story_version=version,
            status=status,
            since=since,
            until=until,
            correlation_id=correlation_id,
            actor=actor,
        )
        try:
            return await audit.runs(where, limit=limit, cursor=cursor)
        except CursorError as exc:
            raise HTTPException(http.HTTP_400_BAD_REQUEST, str(exc)) from exc

    @router.get("/runs/{run_id}", tags=["runs"], responses=unknown, dependencies=viewer)
    async def get_run(run: Run, audit: Store) -> RunDetail:
        """A run, its events in order and its approval gates."""
        return RunDetail(
            run=run,
            timeline=await audit.timeline(run.run_id),
            approvals=await audit.approvals(run.run_id),
        )

    @router.get("/runs/{run_id}/timeline", tags=["runs"], responses=unknown, dependencies=viewer)
    async def get_timeline(run: Run, audit: Store) -> Timeline:
        """A run's events, ordered by ``seq``."""
        return Timeline(items=await audit.timeline(run.run_id))

    @router.get("/runs/{run_id}/events", tags=["runs"], responses=unknown, dependencies=viewer)
    async def get_events(run: Run, audit: Store) -> EventList:
        """A run's events exactly as written, for replay (``baton runs state``) and checks."""
        return EventList(items=await audit.envelopes(run.run_id))

    @router.get(
        "/runs/{run_id}/steps/{step}", tags=["runs"], responses=unknown, dependencies=viewer
    )
    async def get_step(run: Run, step: str, audit: Store) -> StepDetail:
        """One step: state, attempts (input, output, error, retries, duration), gates, AI."""
        attempts = await audit.attempts(run.run_id, step)
        approvals = await audit.approvals(run.run_id, step)
        state = run.steps.get(step)
        if state is None and not attempts and not approvals:
            raise HTTPException(http.HTTP_404_NOT_FOUND, f"run {run.run_id} has no step {step}")
        return StepDetail(
            run_id=run.run_id,
            step=step,
            state=state,
            attempts=attempts,
            approvals=approvals,
            ai_interactions=await audit.ai_interactions(run.run_id, step),
        )

    @router.get("/runs/{run_id}/verify", tags=["runs"], responses=unknown, dependencies=viewer)
    async def verify_run(run: Run, audit: Store) -> Verification:
        """Check the run's hash chain: any edited, missing or reordered event breaks it."""
        envelopes = await audit.envelopes(run.run_id)
        found = find_break(envelopes)
        return Verification(
            run_id=run.run_id,
            events=len(envelopes),
            intact=found is None,
            problem=str(found) if found is not None else None,
            kind=found.kind if found is not None else None,
        )

    @router.get(
        "/runs/{run_id}/evidence",
        tags=["export"],
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}}, **unknown},
        dependencies=viewer,
    )
    async def get_evidence(run_id: str, audit: Store) -> Response:
        """The run's evidence bundle (zip): timeline, story YAML, approvals, AI, chain proof."""
        bundle = await evidence_bundle(audit, run_id)
        if bundle is None:
            raise HTTPException(http.HTTP_404_NOT_FOUND, f"no run {run_id} in the audit store")
        return Response(
            bundle,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{run_id}.zip"'},
        )

    @router.get(
        "/export/events",
        tags=["export"],
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "JSONL: one CloudEvent (JSON form) per line; CSV columns: "
                + ", ".join(CSV_COLUMNS),
                "content": {"application/x-ndjson": {}, "text/csv": {}},
            }
        },
        dependencies=viewer,
    )
    async def export_events(
        audit: Store,
        format: ExportFormat = "jsonl",
        run_id: str | None = None,
        since: Annotated[datetime | None, Query(description="runs started at or after")] = None,
        until: Annotated[datetime | None, Query(description="runs started before")] = None,
    ) -> StreamingResponse:
        """The events of one run or of the runs started in a time range, streamed."""
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        scope = ExportRange(run_id=run_id, since=since, until=until)
        return StreamingResponse(_stream_events(audit.pool, scope, format), media_type=media)

    @router.get("/stories", tags=["stories"], dependencies=viewer)
    async def list_stories(audit: Store) -> StoryList:
        """The latest published version of every story."""
        return StoryList(items=await audit.stories())

    @router.get(
        "/stories/{story_id}/versions",
        tags=["stories"],
        responses={404: {"description": "no version of this story was published"}},
        dependencies=viewer,
    )
    async def list_versions(story_id: str, audit: Store) -> StoryList:
        """Every published version of a story, oldest first, with its YAML."""
        versions = await audit.story_versions(story_id)
        if not versions:
            raise HTTPException(http.HTTP_404_NOT_FOUND, f"no published story {story_id}")
        return StoryList(items=versions)

    @router.post(
        "/admin/rebuild", tags=["admin"], status_code=http.HTTP_202_ACCEPTED, dependencies=admins
    )
    async def rebuild(ops: Ops) -> Positions:
        """Empty the projected tables and re-project from offset 0 (follow /admin/positions)."""
        await ops.rebuild()
        return Positions(positions=await ops.positions())

    @router.get("/admin/positions", tags=["admin"], dependencies=admins)
    async def get_positions(ops: Ops) -> Positions:
        """How far the projection has applied each partition."""
        return Positions(positions=await ops.positions())

    @router.get("/admin/checksum", tags=["admin"], dependencies=admins)
    async def get_checksum(ops: Ops) -> Checksum:
        """A checksum of every projected row: equal before a drop and after the rebuild."""
        digest, rows = await ops.checksum()
        return Checksum(checksum=digest, rows=rows)

    return router
