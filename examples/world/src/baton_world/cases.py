"""A case/ticketing system with customer conversations, and an IT asset shop.

Creating a case, a conversation or an order honours ``Idempotency-Key``: the same key
answers the same record, so a repeated step attempt opens one case, not two.
"""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from baton_world.calls import note
from baton_world.directory import SKUS, person
from baton_world.state import Idempotent, World

__all__ = ["cases_router", "shop_router"]

Json = Any


async def _object(request: Request) -> dict[str, Json]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(422, "the body must be a JSON object")
    return body


def _create(
    request: Request, keys: Idempotent, store: dict[str, dict[str, Json]], record: dict[str, Json]
) -> JSONResponse:
    key = request.headers.get("idempotency-key")
    answer = keys.replay(key)
    if answer is not None:
        note(request, applied=False, replayed_key=key, id=answer[1]["id"])
        return JSONResponse(
            answer[1], status_code=answer[0], headers={"Idempotent-Replayed": "true"}
        )
    store[record["id"]] = record
    keys.remember(key, 201, record)
    note(request, applied=True, id=record["id"])
    return JSONResponse(record, status_code=201)


def cases_router(world: World) -> APIRouter:
    router = APIRouter(prefix="/cases/api/v1")

    @router.post("/cases")
    async def open_case(request: Request) -> JSONResponse:
        body = await _object(request)
        if not isinstance(body.get("title"), str) or not body["title"]:
            raise HTTPException(422, "title is required")
        record = {
            "id": f"CASE-{len(world.cases) + 1:05d}",
            "status": "open",
            "comments": [],
            **body,
        }
        return _create(request, world.case_keys, world.cases, record)

    @router.get("/cases")
    async def list_cases(tag: str | None = None) -> dict[str, Json]:
        found = [c for c in world.cases.values() if tag is None or tag in c.get("tags", [])]
        return {"cases": found}

    @router.get("/cases/{case_id}")
    async def get_case(case_id: str) -> dict[str, Json]:
        if case_id not in world.cases:
            raise HTTPException(404, f"no such case: {case_id}")
        return world.cases[case_id]

    @router.post("/cases/{case_id}/comments")
    async def comment(case_id: str, request: Request) -> dict[str, Json]:
        if case_id not in world.cases:
            raise HTTPException(404, f"no such case: {case_id}")
        body = await _object(request)
        world.cases[case_id]["comments"].append(body)
        note(request, applied=True, id=case_id)
        return {"ok": True, "case": case_id, "comments": len(world.cases[case_id]["comments"])}

    @router.post("/conversations")
    async def open_conversation(request: Request) -> JSONResponse:
        body = await _object(request)
        if not isinstance(body.get("customer"), str):
            raise HTTPException(422, "customer is required")
        record = {
            "id": f"CONV-{len(world.conversations) + 1:05d}",
            "status": "open",
            "messages": [{"from": body["customer"], "text": body.get("message", "")}],
            **body,
        }
        return _create(request, world.case_keys, world.conversations, record)

    @router.post("/conversations/{conversation_id}/messages")
    async def reply(conversation_id: str, request: Request) -> dict[str, Json]:
        conversation = world.conversations.get(conversation_id)
        if conversation is None:
            raise HTTPException(404, f"no such conversation: {conversation_id}")
        body = await _object(request)
        conversation["messages"].append(body)
        if body.get("close"):
            conversation["status"] = "resolved"
        note(request, applied=True, id=conversation_id)
        return {"ok": True, "conversation": conversation_id, "status": conversation["status"]}

    return router


def shop_router(world: World) -> APIRouter:
    router = APIRouter(prefix="/itam/api/v1")

    @router.get("/catalog/{sku}")
    async def catalog(sku: str) -> dict[str, Json]:
        if sku not in SKUS:
            raise HTTPException(404, f"no such sku: {sku}")
        return {"sku": sku, **SKUS[sku]}

    @router.get("/assets")
    async def assets(owner: str) -> dict[str, Json]:
        someone = person(owner)
        if someone is None:
            raise HTTPException(404, f"no such employee: {owner}")
        model = "LAPTOP-PRO-16" if someone.department in ("Engineering", "IT") else "LAPTOP-STD-14"
        return {
            "owner": owner,
            "location": someone.location,
            "assets": [
                {"asset_tag": f"AT-{zlib.crc32(owner.encode()) % 100000:05d}", "sku": model}
            ],
        }

    @router.post("/orders")
    async def order(request: Request) -> JSONResponse:
        body = await _object(request)
        sku = body.get("sku")
        if sku not in SKUS:
            raise HTTPException(422, f"unknown sku: {sku}")
        record = {
            "id": f"PO-{len(world.orders) + 1:05d}",
            "status": "placed",
            "total": SKUS[sku]["price"] * int(body.get("quantity", 1)),
            "currency": SKUS[sku]["currency"],
            **body,
        }
        return _create(request, world.shop_keys, world.orders, record)

    return router
