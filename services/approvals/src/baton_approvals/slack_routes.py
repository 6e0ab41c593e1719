"""``POST /slack/interactions``: Approve/Deny button presses, verified as coming from Slack.

No ``from __future__ import annotations`` here: FastAPI resolves the route signatures.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, cast
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from baton_approvals.decisions import Decider, DecisionRefused, told
from baton_approvals.gates import Decision
from baton_approvals.metrics import SLACK_CALLBACKS
from baton_approvals.settings import SlackSettings
from baton_approvals.slack_api import SlackApiError, SlackClient
from baton_approvals.slack_messages import (
    COMMENT_BLOCK,
    COMMENT_INPUT,
    DENY_MODAL,
    deny_modal,
    parse_action,
)
from baton_approvals.slack_signature import SignatureError, verify
from baton_approvals.store import GateStore
from baton_common.auth import Identity

__all__ = ["SlackIdentityError", "slack_identity", "slack_router"]

log = structlog.get_logger(__name__)


class SlackIdentityError(Exception):
    """A Slack user could not be mapped to a Baton identity."""


async def slack_identity(user_id: str, settings: SlackSettings, slack: SlackClient) -> Identity:
    """The Baton identity of a Slack user: the mapping table first, else the users.info email.

    Raises:
        SlackIdentityError: when neither names the user.
    """
    user = settings.users.get(user_id)
    if user is None:
        try:
            user = await slack.user_email(user_id)
        except SlackApiError as exc:
            raise SlackIdentityError(f"cannot look up Slack user {user_id}: {exc}") from exc
        if user is None:
            raise SlackIdentityError(f"Slack user {user_id} is not mapped and shows no email")
    return Identity(user=user, groups=list(settings.groups.get(user, [])))


def _payload(body: bytes) -> dict[str, object]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "expected a form with a JSON `payload` field"
        ) from exc
    if not isinstance(payload, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "`payload` is not a JSON object")
    return cast(dict[str, object], payload)


def _text(value: object, *path: str) -> str | None:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def slack_router(
    *,
    settings: SlackSettings,
    require_comment: bool,
    store: Callable[[], GateStore],
    decider: Callable[[], Decider],
    slack: Callable[[], SlackClient],
) -> APIRouter:
    """The Slack interactivity endpoint (configure its URL as the app's Request URL).

    Args:
        settings: the Slack settings (secrets set).
        require_comment: whether a deny needs a comment (the modal's field is required).
        store: gives the inbox.
        decider: gives the one decision path.
        slack: gives the Web API client.
    """
    assert settings.signing_secret is not None
    secret = settings.signing_secret.get_secret_value()
    Store = Annotated[GateStore, Depends(store)]
    Deciding = Annotated[Decider, Depends(decider)]
    Slack = Annotated[SlackClient, Depends(slack)]
    router = APIRouter(prefix="/slack", tags=["slack"])

    async def first_use(gates: GateStore, signature: str) -> bool:
        now = datetime.now(UTC)
        async with gates.pool.acquire() as conn:
            await conn.execute(
                "delete from slack_callbacks_seen where seen_at < $1",
                now - timedelta(seconds=2 * settings.replay_window_seconds),
            )
            result = await conn.execute(
                "insert into slack_callbacks_seen (signature, seen_at) values ($1, $2)"
                " on conflict do nothing",
                signature,
                now,
            )
        return result.endswith(" 1")

    @router.post(
        "/interactions",
        responses={
            400: {"description": "not an interaction payload"},
            401: {"description": "bad signature, stale timestamp, or a replay"},
        },
    )
    async def interactions(
        request: Request, gates: Store, deciding: Deciding, client: Slack
    ) -> Response:
        """A button press or a deny modal's submission.

        A press is answered 200 with ``ok`` and, when refused, the reason (also told to the
        user in Slack); Deny opens a modal asking why, and its submission decides.
        """
        body = await request.body()
        signature = request.headers.get("X-Slack-Signature")
        try:
            verify(
                secret,
                timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                signature=signature,
                body=body,
                now=time.time(),
                window_seconds=settings.replay_window_seconds,
            )
        except SignatureError as exc:
            SLACK_CALLBACKS.labels("forged").inc()
            log.warning("slack callback refused", reason=str(exc))
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"not from Slack: {exc}") from exc
        assert signature is not None
        if not await first_use(gates, signature):
            SLACK_CALLBACKS.labels("replayed").inc()
            log.warning("slack callback replayed")
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not from Slack: replayed request")
        payload = _payload(body)
        kind = payload.get("type")
        if kind == "view_submission":
            return await submitted(payload, deciding, client)
        if kind != "block_actions":
            SLACK_CALLBACKS.labels("ignored").inc()
            return JSONResponse({"ok": False, "reason": f"ignored interaction type {kind!r}"})
        return await pressed(payload, gates, deciding, client)

    async def pressed(
        payload: dict[str, object], gates: GateStore, deciding: Decider, client: SlackClient
    ) -> Response:
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else None
        decision = parse_action(_text(action, "action_id") or "")
        gate_id = _text(action, "value")
        user_id = _text(payload, "user", "id")
        channel = _text(payload, "channel", "id") or _text(payload, "container", "channel_id")
        if decision is None or gate_id is None or user_id is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "not an Approve/Deny press of a Baton gate"
            )
        trigger = _text(payload, "trigger_id")
        gate = await gates.get(gate_id)
        if decision == "deny" and trigger is not None and gate is not None:
            # Deny asks why first: a modal whose submission carries the comment.
            view = deny_modal(gate, channel=channel, comment_required=require_comment)
            try:
                await client.open_view(trigger, view)
                SLACK_CALLBACKS.labels("modal").inc()
                return JSONResponse({"ok": True, "modal": "opened"})
            except SlackApiError as exc:
                log.warning("cannot open the deny modal", error=str(exc))
        try:
            identity = await slack_identity(user_id, settings, client)
            record = await deciding.decide(
                gate_id, identity, cast(Decision, decision), None, channel="slack"
            )
        except (SlackIdentityError, DecisionRefused) as exc:
            SLACK_CALLBACKS.labels("refused").inc()
            reason = str(exc)
            if channel is not None:
                try:
                    await client.post_ephemeral(channel, user_id, told(exc))
                except SlackApiError as err:
                    log.warning("cannot tell the Slack user", error=str(err))
            return JSONResponse({"ok": False, "reason": reason})
        SLACK_CALLBACKS.labels("decided").inc()
        return JSONResponse(
            {"ok": True, "command_id": record.command_id, "approver": record.approver}
        )

    async def submitted(
        payload: dict[str, object], deciding: Decider, client: SlackClient
    ) -> Response:
        view = payload.get("view")
        user_id = _text(payload, "user", "id")
        if _text(view, "callback_id") != DENY_MODAL or user_id is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a Baton deny modal")
        try:
            meta = json.loads(_text(view, "private_metadata") or "")
            gate_id = meta["gate_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the modal names no gate") from exc
        comment = _text(view, "state", "values", COMMENT_BLOCK, COMMENT_INPUT, "value")
        try:
            identity = await slack_identity(user_id, settings, client)
            await deciding.decide(gate_id, identity, "deny", comment, channel="slack")
        except (SlackIdentityError, DecisionRefused) as exc:
            SLACK_CALLBACKS.labels("refused").inc()
            # Shown under the comment field; the modal stays open.
            return JSONResponse({"response_action": "errors", "errors": {COMMENT_BLOCK: told(exc)}})
        SLACK_CALLBACKS.labels("decided").inc()
        return Response(status_code=status.HTTP_200_OK)  # an empty answer closes the modal

    return router
