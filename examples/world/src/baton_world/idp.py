"""An identity provider with Okta's user API: read, update, suspend, revoke sessions.

``Authorization: SSWS <token>`` is required. A write carrying an ``Idempotency-Key`` it
has answered before gets the same answer again (header ``Idempotent-Replayed: true``) and
changes nothing, so a repeated step attempt cannot suspend an account twice. Suspending
an account that is not active is an Okta error (400, ``E0000001``), as it is for real.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from baton_world.calls import note
from baton_world.directory import account_of, person
from baton_world.state import World

__all__ = ["idp_router"]

Json = Any
_PROFILE_FIELDS = ("department", "title", "manager", "firstName", "lastName")


def _error(status: int, code: str, summary: str) -> JSONResponse:
    return JSONResponse(
        {"errorCode": code, "errorSummary": summary, "errorCauses": []}, status_code=status
    )


def idp_router(world: World) -> APIRouter:
    router = APIRouter(prefix="/idp/api/v1")

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"SSWS {world.settings.idp_token}"

    def account(login: str) -> dict[str, Json] | None:
        found = world.accounts.get(login)
        if found is None:
            someone = person(login)
            if someone is not None:  # an employee the directory generates on first use
                found = world.accounts[login] = account_of(someone, len(world.accounts) + 1)
        return found

    def replayed(request: Request) -> Response | None:
        key = request.headers.get("idempotency-key")
        answer = world.idp_keys.replay(key)
        if answer is None:
            return None
        note(request, applied=False, replayed_key=key)
        status, body = answer
        headers = {"Idempotent-Replayed": "true"}
        if body is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    def target(request: Request, login: str, *, write: bool) -> dict[str, Json] | Response:
        """The account to act on, or the answer to give instead (401, a replay, 404)."""
        if not authorized(request):
            return _error(401, "E0000011", "Invalid token provided")
        if write and (again := replayed(request)) is not None:
            return again
        found = account(login)
        if found is None:
            return _error(404, "E0000007", f"Not found: Resource not found: {login} (User)")
        return found

    @router.get("/users")
    async def list_users(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "E0000011", "Invalid token provided")
        return JSONResponse(list(world.accounts.values()))

    @router.get("/users/{login}")
    async def get_user(login: str, request: Request) -> Response:
        found = target(request, login, write=False)
        return found if isinstance(found, Response) else JSONResponse(found)

    @router.post("/users/{login}")
    async def update_user(login: str, request: Request) -> Response:
        """Partial profile update (Okta's POST semantics)."""
        found = target(request, login, write=True)
        if isinstance(found, Response):
            return found
        body = await request.json()
        profile = body.get("profile") if isinstance(body, dict) else None
        if not isinstance(profile, dict) or not profile:
            return _error(400, "E0000003", "The request body was not well-formed: profile")
        unknown = sorted(set(profile) - set(_PROFILE_FIELDS))
        if unknown:
            return _error(400, "E0000001", f"Api validation failed: unknown fields {unknown}")
        before = {k: found["profile"].get(k) for k in profile}
        found["profile"].update(profile)
        note(request, applied=True, user=login, changed=profile, before=before)
        world.idp_keys.remember(request.headers.get("idempotency-key"), 200, found)
        return JSONResponse(found)

    @router.post("/users/{login}/lifecycle/suspend")
    async def suspend(login: str, request: Request) -> Response:
        found = target(request, login, write=True)
        if isinstance(found, Response):
            return found
        if found["status"] != "ACTIVE":
            note(request, applied=False, user=login, refused=found["status"])
            return _error(
                400, "E0000001", "Api validation failed: Cannot suspend a user that is not active"
            )
        found["status"] = "SUSPENDED"
        note(request, applied=True, user=login, suspended=True)
        world.idp_keys.remember(request.headers.get("idempotency-key"), 200, {})
        return JSONResponse({})

    @router.delete("/users/{login}/sessions")
    async def revoke_sessions(login: str, request: Request) -> Response:
        found = target(request, login, write=True)
        if isinstance(found, Response):
            return found
        revoked, found["sessions"] = found["sessions"], 0
        note(request, applied=True, user=login, sessions_revoked=revoked)
        world.idp_keys.remember(request.headers.get("idempotency-key"), 204, None)
        return Response(status_code=204)

    return router
