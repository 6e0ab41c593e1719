"""The web inbox: server-rendered pages to see pending gates, decide them, and see history.

A person signs in with the same bearer token the API takes (a static token or a JWT);
it is kept in an HttpOnly, SameSite=Strict cookie scoped to the inbox, and every form
carries a CSRF token derived from it. Decisions go through the same :class:`Decider` as
the API and Slack, with channel ``web``.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures.
"""

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from baton_approvals.decisions import Decider, DecisionRefused, told
from baton_approvals.gates import Decision, StateFilter
from baton_approvals.identity import principals
from baton_approvals.settings import InboxSettings
from baton_approvals.store import GateStore
from baton_common.auth import (
    AuthenticationError,
    Authenticator,
    Identity,
    Role,
    allows,
    refusal,
)

__all__ = ["COOKIE", "csrf_token", "inbox_router"]

COOKIE: Final = "baton_inbox"
PREFIX: Final = "/inbox"
_MAX_FORM: Final = 16_384
_DECISIONS: Final[dict[str, Decision]] = {"approve": "approve", "deny": "deny"}

_templates = Environment(
    loader=PackageLoader("baton_approvals", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)


def csrf_token(session: str) -> str:
    """The CSRF token of a session: only someone who holds the session can compute it."""
    return hmac.new(b"baton-inbox-csrf", session.encode(), hashlib.sha256).hexdigest()


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_FORM:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


def _page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _to_inbox(flash: str | None = None, *, error: bool = False) -> RedirectResponse:
    query = f"?{'error' if error else 'flash'}={quote(flash)}" if flash else ""
    return RedirectResponse(f"{PREFIX}{query}", status_code=status.HTTP_303_SEE_OTHER)


def inbox_router(
    *,
    settings: InboxSettings,
    store: Callable[[], GateStore],
    decider: Callable[[], Decider],
    authenticator: Authenticator,
    deny_requires_comment: bool,
) -> APIRouter:
    """The ``/inbox`` pages."""
    Store = Annotated[GateStore, Depends(store)]
    Deciding = Annotated[Decider, Depends(decider)]
    router = APIRouter(prefix=PREFIX, tags=["inbox"], include_in_schema=False)

    async def signed_in(request: Request) -> tuple[str, Identity] | None:
        session = request.cookies.get(COOKIE)
        if not session:
            return None
        try:
            return session, await authenticator.authenticate(session)
        except AuthenticationError:
            return None

    def sign_in_again(reason: str | None = None) -> Response:
        response = _page("login.html", status.HTTP_401_UNAUTHORIZED, error=reason)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @router.get("/login")
    async def login_page() -> Response:
        return _page("login.html", error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        token = (await _form(request)).get("token", "").strip()
        try:
            identity = await authenticator.authenticate(token)
        except AuthenticationError as exc:
            return _page("login.html", status.HTTP_401_UNAUTHORIZED, error=f"Not signed in: {exc}")
        if not allows(identity, Role.VIEWER):
            reason = refusal(identity, Role.VIEWER, None)
            return _page("login.html", status.HTTP_403_FORBIDDEN, error=f"Not signed in: {reason}")
        response = _to_inbox()
        response.set_cookie(
            COOKIE,
            token,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookie,
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @router.get("")
    async def inbox(
        request: Request, gates: Store, flash: str | None = None, error: str | None = None
    ) -> Response:
        who = await signed_in(request)
        if who is None:
            return RedirectResponse(f"{PREFIX}/login", status_code=status.HTTP_303_SEE_OTHER)
        session, identity = who
        pending = await gates.find(
            state=StateFilter.PENDING, decidable_by=principals(identity), limit=200
        )
        details = []
        for gate in pending:
            detail = await gates.detail(gate.gate_id)
            if detail is not None:
                mine = next((d for d in detail.decisions if d.approver == identity.user), None)
                details.append({**detail.model_dump(), "state": detail.state, "mine": mine})
        decided = await gates.find(state=StateFilter.DECIDED, limit=settings.history_limit)
        return _page(
            "inbox.html",
            base=PREFIX,
            identity=identity,
            csrf=csrf_token(session),
            pending=details,
            decided=decided,
            flash=error or flash,
            flash_error=error is not None,
            deny_requires_comment=deny_requires_comment,
        )

    @router.post("/gates/{gate_id}/decision")
    async def decide(gate_id: str, request: Request, deciding: Deciding) -> Response:
        who = await signed_in(request)
        if who is None:
            return sign_in_again("Your session has ended; sign in again.")
        session, identity = who
        form = await _form(request)
        if not hmac.compare_digest(form.get("csrf", ""), csrf_token(session)):
            return _page("login.html", status.HTTP_403_FORBIDDEN, error="Form expired; reload.")
        if not allows(identity, Role.APPROVER):
            return _to_inbox(f"Not recorded: {refusal(identity, Role.APPROVER, None)}", error=True)
        decision = _DECISIONS.get(form.get("decision", ""))
        if decision is None:
            return _to_inbox("Choose Approve or Deny.", error=True)
        comment = form.get("comment") or None
        if comment is not None and len(comment) > 4000:
            return _to_inbox("The comment is longer than 4000 characters.", error=True)
        try:
            await deciding.decide(gate_id, identity, decision, comment, channel="web")
        except DecisionRefused as refused:
            return _to_inbox(told(refused), error=True)
        verb = "Approval" if decision == "approve" else "Denial"
        return _to_inbox(f"{verb} of gate {gate_id} recorded; waiting for the scheduler.")

    return router
