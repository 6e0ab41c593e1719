"""PostgreSQL helpers shared by the services that keep a store: a typed face over asyncpg,
and the versioned schema migrations each service applies at start.

asyncpg ships no type information, so services talk to the small :class:`Pool` and
:class:`Connection` protocols below; asyncpg's objects satisfy them. Every connection's
``search_path`` is the service's schema, so queries name tables without a schema and tests
can run against a private schema of their own. This module does not import asyncpg: each
service builds its own pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Final, Protocol, TypeVar

import structlog

__all__ = [
    "Connection",
    "Migration",
    "Pool",
    "Row",
    "column",
    "load_migrations",
    "migrate",
    "ping",
    "quote_ident",
]

log = structlog.get_logger(__name__)

Row = Mapping[str, object]
T = TypeVar("T")

_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Connection(Protocol):
    """The parts of ``asyncpg.Connection`` every store uses."""

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetch(self, query: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, query: str, *args: object) -> Row | None: ...

    async def fetchval(self, query: str, *args: object) -> object: ...

    def transaction(self) -> AbstractAsyncContextManager[object]: ...


class Pool(Protocol):
    """The parts of ``asyncpg.Pool`` every store uses."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...


def column(row: Row, name: str, kind: type[T]) -> T:
    """``row[name]``, checked to be a ``kind``."""
    value = row[name]
    if not isinstance(value, kind):
        raise TypeError(f"column {name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (schema names come from settings, never from requests)."""
    return '"' + name.replace('"', '""') + '"'


async def ping(pool: Pool) -> str | None:
    """A readiness check: None when PostgreSQL answers ``select 1``."""
    async with pool.acquire() as conn:
        value = await conn.fetchval("select 1")
    return None if value == 1 else f"select 1 returned {value!r}"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """``package``'s ``migrations/NNNN_name.sql`` files, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(pool: Pool, *, schema: str, package: str, table: str) -> list[int]:
    """Apply ``package``'s migrations that ``schema`` lacks, each in its own transaction.

    ``table`` (in ``schema``) records the applied versions; the versions applied now are
    returned. A transaction-scoped advisory lock per schema serialises replicas starting
    together, so each migration is applied exactly once.
    """
    applied: list[int] = []
    async with pool.acquire() as conn:
        for migration in load_migrations(package):
            async with conn.transaction():
                await conn.execute(
                    "select pg_advisory_xact_lock(hashtext($1))", f"baton:{schema}:migrations"
                )
                await conn.execute(f"create schema if not exists {quote_ident(schema)}")
                await conn.execute(f"set local search_path to {quote_ident(schema)}")
                await conn.execute(
                    f"create table if not exists {table} ("
                    " version integer primary key, name text not null,"
                    " applied_at timestamptz not null default now())"
                )
                done = await conn.fetchval(
                    f"select true from {table} where version = $1", migration.version
                )
                if done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    f"insert into {table} (version, name) values ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied.append(migration.version)
                log.info("migration applied", schema=schema, version=migration.version)
    return applied
