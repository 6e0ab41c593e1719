"""The approvals store's PostgreSQL pool and migrations (helpers in ``baton_common.postgres``).

Every connection's ``search_path`` is the service's schema, so queries name tables
without a schema and tests can run against a private schema of their own.
"""

from __future__ import annotations

from typing import Final, cast

import asyncpg

from baton_common import postgres
from baton_common.postgres import Connection, Migration, Pool, Row, column, ping, quote_ident

__all__ = [
    "Connection",
    "Migration",
    "Pool",
    "Row",
    "column",
    "create_pool",
    "load_migrations",
    "migrate",
    "ping",
    "quote_ident",
]

_MIGRATIONS_TABLE: Final = "approvals_schema_migrations"


async def create_pool(url: str, *, schema: str, max_size: int = 10) -> Pool:
    """A connection pool whose connections resolve unqualified names in ``schema``."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": "baton-approvals"},
    )
    return cast(Pool, pool)


def load_migrations() -> list[Migration]:
    """The service's ``migrations/NNNN_name.sql`` files, in version order."""
    return postgres.load_migrations("baton_approvals")


async def migrate(pool: Pool, *, schema: str) -> list[int]:
    """Apply the migrations ``schema`` lacks; return their versions."""
    return await postgres.migrate(
        pool, schema=schema, package="baton_approvals", table=_MIGRATIONS_TABLE
    )
