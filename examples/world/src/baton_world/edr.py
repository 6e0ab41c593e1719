"""The EDR console: builds phishing alerts and sends them to Baton as signed webhooks.

Each delivery is ``POST {ingest}/webhooks/edr-alerts`` with a JSON body signed like
``docs/ingest.md`` says: ``X-EDR-Timestamp: <unix seconds>`` and
``X-EDR-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. A redelivery
(the console retrying, or a second sensor reporting the same alert) carries the same
``alert_id`` with a new ``delivery`` id, so ingest accepts it and the story's dedup key
folds it into the first run.

Control routes (not part of the console's wire format): ``POST /_edr/alerts`` sends one
alert of a scenario, ``POST /_edr/alerts/{id}/redeliver`` repeats one, ``POST /_edr/stream``
sends many at a rate with a share of duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request

from baton_world.state import World

__all__ = ["SCENARIOS", "edr_router", "signature_headers"]

Json = Any


@dataclass(frozen=True)
class Scenario:
    """A kind of phishing alert and what the world will make of it."""

    user: str
    sender: str
    url: str
    subject: str
    clicked: bool
    expect: str  # what the verdict rule answers, for people reading /_edr/scenarios


SCENARIOS: dict[str, Scenario] = {
    "confident": Scenario(
        "bob@corp.example",
        "it-support@micros0ft-login.example",
        "http://micros0ft-login.example/reset?u=bob",
        "Your password expires today",
        False,
        "malicious 0.97: quarantine + block sender, no lockout → automated containment",
    ),
    "confident-clicked": Scenario(
        "heidi@corp.example",
        "payroll@payroll-update.example",
        "http://payroll-update.example/confirm",
        "Payroll: confirm your bank details",
        True,
        "malicious 0.97 and clicked: containment, then lockout approval",
    ),
    "uncertain": Scenario(
        "dana@corp.example",
        "share@docs-share.example",
        "http://docs-share.example/view?doc=Q3-forecast",
        "Q3 forecast shared with you",
        True,
        "malicious 0.78, phished before: routed to an engineer, lockout approval",
    ),
    "benign": Scenario(
        "grace@corp.example",
        "news@partner.example",
        "https://partner.example/newsletter",
        "Partner newsletter",
        False,
        "benign 0.91: routed to an engineer for a look, nothing locked",
    ),
}


def signature_headers(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    """Headers of a signed EDR webhook carrying ``body``."""
    timestamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-EDR-Timestamp": timestamp,
        "X-EDR-Signature": f"sha256={digest.hexdigest()}",
    }


class Console:
    def __init__(self, world: World, http: httpx.AsyncClient) -> None:
        self.world = world
        self.http = http
        self.alerts: dict[str, dict[str, Json]] = {}

    def new_alert(
        self, scenario: str, user: str | None = None, alert_id: str | None = None
    ) -> dict[str, Json]:
        if scenario not in SCENARIOS:
            raise HTTPException(422, f"unknown scenario {scenario!r}: one of {sorted(SCENARIOS)}")
        plan = SCENARIOS[scenario]
        alert_id = alert_id or f"edr-{uuid.uuid4().hex[:12]}"
        user = user or plan.user
        message_id = f"msg-{hashlib.sha1(alert_id.encode()).hexdigest()[:16]}"
        self.world.messages[message_id] = {
            "message_id": message_id,
            "sender": plan.sender,
            "recipients": [user],
            "subject": plan.subject,
            "received_at": datetime.now(UTC).isoformat(),
            "authentication": {
                "spf": "fail"
                if "example" in plan.sender and "partner" not in plan.sender
                else "pass",
                "dkim": "none",
                "dmarc": "fail" if plan.clicked else "none",
            },
            "urls": [plan.url],
            "clicked": plan.clicked,
            "recipient_count": 1,
        }
        alert = {
            "alert_id": alert_id,
            "type": "phishing",
            "severity": "high",
            "title": "User clicked a link in a suspicious email"
            if plan.clicked
            else "Suspicious email delivered",
            "detected_at": datetime.now(UTC).isoformat(),
            "user": user,
            "host": f"ws-{user.split('@', 1)[0]}-01",
            "email": {
                "message_id": message_id,
                "sender": plan.sender,
                "subject": plan.subject,
                "url": plan.url,
            },
        }
        self.alerts[alert_id] = alert
        return alert

    async def deliver(self, alert: dict[str, Json], attempt: int = 1) -> dict[str, Json]:
        body = json.dumps(
            {**alert, "delivery": {"id": str(uuid.uuid4()), "attempt": attempt}},
            separators=(",", ":"),
        ).encode()
        url = f"{self.world.settings.ingest_url}/webhooks/{self.world.settings.edr_webhook_path}"
        headers = signature_headers(body, self.world.settings.edr_webhook_secret)
        try:
            answer = await self.http.post(url, content=body, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            return {"alert_id": alert["alert_id"], "status": 0, "error": repr(exc)}
        try:
            reply: Json = answer.json()
        except ValueError:
            reply = answer.text
        return {"alert_id": alert["alert_id"], "status": answer.status_code, "ingest": reply}

    async def stream(
        self, *, rate: float, count: int, duplicates: float, seed: int, scenarios: list[str]
    ) -> dict[str, Json]:
        chooser = random.Random(seed)
        gate = asyncio.Semaphore(256)
        sent_at: dict[str, float] = {}
        originals: list[dict[str, Json]] = []
        jobs = []
        start = time.monotonic()

        async def one(alert: dict[str, Json], attempt: int) -> dict[str, Json]:
            async with gate:
                return await self.deliver(alert, attempt)

        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            if originals and chooser.random() < duplicates:
                alert, attempt = chooser.choice(originals[-50:]), 2
            else:
                scenario = chooser.choice(scenarios)
                user = f"u{uuid.uuid4().hex[:10]}@corp.example"
                alert, attempt = self.new_alert(scenario, user=user), 1
                originals.append(alert)
                sent_at[alert["alert_id"]] = time.time()
            jobs.append(asyncio.create_task(one(alert, attempt)))
        results = await asyncio.gather(*jobs)
        statuses: dict[str, int] = {}
        for result in results:
            statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
        return {
            "sent": len(results),
            "unique": len(originals),
            "duplicates": len(results) - len(originals),
            "seconds": round(time.monotonic() - start, 3),
            "statuses": statuses,
            "sent_at": sent_at,
        }


def edr_router(world: World, http: httpx.AsyncClient) -> APIRouter:
    router = APIRouter()
    console = Console(world, http)

    @router.get("/_edr/scenarios")
    async def scenarios() -> Json:
        return {name: plan.__dict__ for name, plan in SCENARIOS.items()}

    @router.post("/_edr/alerts")
    async def send_alert(request: Request) -> Json:
        """``{"scenario": "uncertain", "user"?, "alert_id"?}`` → the alert and ingest's answer."""
        body = await request.json() if await request.body() else {}
        alert = console.new_alert(
            body.get("scenario", "uncertain"), body.get("user"), body.get("alert_id")
        )
        return {"alert": alert, **(await console.deliver(alert))}

    @router.post("/_edr/alerts/{alert_id}/redeliver")
    async def redeliver(alert_id: str) -> Json:
        alert = console.alerts.get(alert_id)
        if alert is None:
            raise HTTPException(404, f"the console never sent {alert_id}")
        return await console.deliver(alert, attempt=2)

    @router.post("/_edr/stream")
    async def stream(request: Request) -> Json:
        """``{"rate": 20, "count": 100, "duplicates": 0.1, "seed": 1, "scenarios": [...]}``."""
        body = await request.json()
        rate, count = float(body.get("rate", 20)), int(body.get("count", 100))
        duplicates = float(body.get("duplicates", 0.1))
        chosen = body.get("scenarios") or ["confident", "uncertain", "benign"]
        if rate <= 0 or count < 1 or not 0 <= duplicates < 1 or set(chosen) - set(SCENARIOS):
            raise HTTPException(
                422,
                f"need rate > 0, count ≥ 1, 0 ≤ duplicates < 1, scenarios ⊆ {sorted(SCENARIOS)}",
            )
        return await console.stream(
            rate=rate,
            count=count,
            duplicates=duplicates,
            seed=int(body.get("seed", 1)),
            scenarios=chosen,
        )

    return router
