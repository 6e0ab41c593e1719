"""PostgreSQL per test: ``database_url`` (tests/conftest.py) and a private, dropped schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from roles_kit import AUTH

from baton_audit.db import Pool, create_pool, migrate, quote_ident
from baton_audit.settings import AuditSettings

from .fakes import FakePublisher

PoolFactory = Callable[[], Awaitable[Pool]]


@pytest.fixture
async def new_pool(database_url: str) -> AsyncIterator[PoolFactory]:
    """Makes migrated pools, each on a private schema dropped after the test."""
    made: list[tuple[str, Pool]] = []

    async def make() -> Pool:
        schema = f"test_audit_{uuid.uuid4().hex[:12]}"
        pool = await create_pool(database_url, schema=schema, max_size=4)
        made.append((schema, pool))
        await migrate(pool, schema=schema)
        return pool

    yield make
    conn = await asyncpg.connect(database_url)
    try:
        for schema, pool in made:
            await pool.close()
            await conn.execute(f"drop schema if exists {quote_ident(schema)} cascade")
    finally:
        await conn.close()


@pytest.fixture
async def pool(new_pool: PoolFactory) -> Pool:
    return await new_pool()


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    name = f"test_audit_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"drop schema if exists {quote_ident(name)} cascade")
    finally:
        await conn.close()


@pytest.fixture
def settings(database_url: str, schema: str) -> AuditSettings:
    return AuditSettings(database_url=database_url, db_schema=schema, auth=AUTH)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()
