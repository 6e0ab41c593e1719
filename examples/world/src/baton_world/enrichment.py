"""Read-only services the stories enrich from: reputation, user risk, email, SIEM, HR.

Wire formats: small JSON REST APIs in the style of the real ones (a VirusTotal-like
reputation verdict, an Elasticsearch ``_search`` answer for the SIEM, a Workday-like
worker list). The email service also quarantines messages and blocks senders.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from baton_world.calls import note
from baton_world.directory import PEOPLE, SIEM_HISTORY, person, reputation
from baton_world.state import World

__all__ = ["enrichment_router"]

Json = Any


def _risk_level(score: int) -> str:
    return "high" if score >= 70 else "medium" if score >= 30 else "low"


def enrichment_router(world: World) -> APIRouter:
    router = APIRouter()

    @router.get("/reputation/api/v1/urls")
    async def url_reputation(url: str) -> dict[str, Json]:
        domain, rep = reputation(url)
        return {
            "url": url,
            "domain": domain,
            "verdict": rep.verdict,
            "score": rep.score,
            "categories": list(rep.categories),
            "first_seen_days": rep.first_seen_days,
        }

    @router.get("/reputation/api/v1/senders")
    async def sender_reputation(email: str) -> dict[str, Json]:
        domain, rep = reputation(email)
        return {
            "sender": email,
            "domain": domain,
            "verdict": rep.verdict,
            "score": rep.score,
            "first_seen_days": rep.first_seen_days,
            "dmarc_policy": "reject" if rep.verdict == "clean" else "none",
        }

    @router.get("/risk/api/v1/users/{email}")
    async def user_risk(email: str) -> dict[str, Json]:
        someone = person(email)
        if someone is None:
            raise HTTPException(404, f"no such user: {email}")
        factors = ["phished before"] if someone.phished_before else []
        if someone.privileged:
            factors.append("privileged account")
        return {
            "user": email,
            "risk_score": someone.risk_score,
            "level": _risk_level(someone.risk_score),
            "phished_before": someone.phished_before,
            "privileged": someone.privileged,
            "factors": factors,
        }

    @router.get("/email/api/v1/messages/{message_id}")
    async def message_metadata(message_id: str) -> dict[str, Json]:
        message = world.messages.get(message_id)
        if message is None:
            raise HTTPException(404, f"no such message: {message_id}")
        return {**message, "quarantined": message_id in world.quarantined}

    @router.post("/email/api/v1/messages/{message_id}/quarantine")
    async def quarantine(message_id: str, request: Request) -> JSONResponse:
        """Pull the message from every mailbox; ``{"block_sender": true}`` also blocks its
        sender (the gateway's one-click remediation)."""
        message = world.messages.get(message_id)
        if message is None:
            raise HTTPException(404, f"no such message: {message_id}")
        raw = await request.body()
        options = json.loads(raw) if raw else {}
        block = isinstance(options, dict) and options.get("block_sender") is True
        key = request.headers.get("idempotency-key")
        already = message_id in world.quarantined
        if not already:
            world.quarantined[message_id] = key or ""
        sender = message["sender"]
        if block and sender not in world.blocked_senders:
            world.blocked_senders.append(sender)
        note(
            request, quarantined=message_id, applied=not already, blocked=sender if block else None
        )
        return JSONResponse(
            {
                "message_id": message_id,
                "status": "quarantined",
                "already": already,
                "removed_from": message["recipients"],
                "sender_blocked": block,
            }
        )

    @router.post("/email/api/v1/blocklist")
    async def block_sender(request: Request) -> dict[str, Json]:
        body = await request.json()
        sender = body.get("sender") if isinstance(body, dict) else None
        if not isinstance(sender, str) or "@" not in sender:
            raise HTTPException(422, "body must be {'sender': '<email address>'}")
        applied = sender not in world.blocked_senders
        if applied:
            world.blocked_senders.append(sender)
        note(request, blocked=sender, applied=applied)
        return {"sender": sender, "blocked": True}

    @router.post("/siem/{index}/_search")
    async def siem_search(index: str, request: Request) -> dict[str, Json]:
        text = (await request.body()).decode(errors="replace")
        hits = [
            {"_index": index, "_id": f"{email}-{n}", "_score": 1.0, "_source": source}
            for email, history in SIEM_HISTORY.items()
            if email in text
            for n, source in enumerate(history)
        ]
        return {
            "took": 3,
            "timed_out": False,
            "hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": hits},
        }

    @router.get("/hr/api/v1/workers")
    async def workers() -> dict[str, Json]:
        return {"workers": [_worker(email) for email in PEOPLE]}

    @router.get("/hr/api/v1/workers/{email}")
    async def worker(email: str) -> dict[str, Json]:
        if email not in PEOPLE:
            raise HTTPException(404, f"no such worker: {email}")
        return _worker(email)

    return router


def _worker(email: str) -> dict[str, Json]:
    person = PEOPLE[email]
    return {
        "email": email,
        "name": person.name,
        "department": person.department,
        "title": person.title,
        "manager": person.manager,
        "location": person.location,
        "status": person.hr_status,
    }
