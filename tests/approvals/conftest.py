"""PostgreSQL per test: ``database_url`` (tests/conftest.py) and a private, dropped schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from baton_approvals.db import Pool, create_pool, migrate, quote_ident
from baton_approvals.settings import ApprovalsSettings
from baton_common.auth import AuthSettings, Grant, Identity, Role

from .fakes import FakePublisher

APPROVER = [Grant(role=Role.APPROVER)]


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A private schema for this test, dropped afterwards (parallel runs never clash)."""
    name = f"test_approvals_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"drop schema if exists {quote_ident(name)} cascade")
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str, schema: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, schema=schema, max_size=4)
    try:
        await migrate(pool, schema=schema)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def settings(database_url: str, schema: str) -> ApprovalsSettings:
    return ApprovalsSettings(
        database_url=database_url,
        db_schema=schema,
        auth=AuthSettings(
            tokens={
                "t-alice": Identity(user="alice", groups=["secops-oncall"], roles=APPROVER),
                "t-bob": Identity(user="bob", groups=["helpdesk"], roles=APPROVER),
                "t-carol": Identity(user="carol", groups=[], roles=APPROVER),
            }
        ),
    )
