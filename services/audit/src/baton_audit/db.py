"""PostgreSQL access: a typed face over asyncpg, and the schema migrations run at start.

asyncpg ships no type information, so the rest of the service talks to the small
:class:`Pool` and :class:`Connection` protocols below; asyncpg's objects satisfy them.
Every connection's ``search_path`` is the service's schema, so queries name tables
without a schema and tests can run against a private schema of their own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Final, Protocol, TypeVar, cast

import asyncpg
import orjson
import structlog

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

log = structlog.get_logger(__name__)

Row = Mapping[str, object]
T = TypeVar("T")

_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATIONS_TABLE: Final = "audit_schema_migrations"


class Connection(Protocol):
    """The parts of ``asyncpg.Connection`` the service uses."""

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetch(self, query: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, query: str, *args: object) -> Row | None: ...

    async def fetchval(self, query: str, *args: object) -> object: ...

    def transaction(self) -> AbstractAsyncContextManager[object]: ...

    async def executemany(self, query: str, args: Iterable[Sequence[object]]) -> None: ...

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...

    def cursor(self, query: str, *args: object, prefetch: int | None = None) -> AsyncIterable[Row]:
        """A server-side cursor (inside a transaction) yielding rows ``prefetch`` at a time."""
        ...


class Pool(Protocol):
    """The parts of ``asyncpg.Pool`` the service uses."""

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


class _Codecs(Protocol):
    async def set_type_codec(
        self,
        typename: str,
        *,
        schema: str,
        encoder: Callable[[object], bytes],
        decoder: Callable[[bytes], object],
        format: str,
    ) -> None: ...


_JSONB_VERSION: Final = b"\x01"
# Types the standard library refuses are refused here too (via the fallback below).
_LONG_NUMBER: Final = re.compile(rb"\d{19}")
_STRICT: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encode_jsonb(value: object) -> bytes:
    # orjson for speed (most of the projection's encoding time); the standard library for
    # what orjson refuses (integers beyond 64 bits, lone surrogates) or would turn into
    # null (NaN, infinities), so PostgreSQL gives the same verdict on them as before.
    try:
        encoded = orjson.dumps(value, option=_STRICT)
    except (orjson.JSONEncodeError, TypeError):
        encoded = b""
    if not encoded or (b"null" in encoded and _has_non_finite(value)):
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return _JSONB_VERSION + encoded


def _has_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _decode_jsonb(raw: bytes) -> object:
    text = raw[1:]
    # orjson reads integers beyond 64 bits (which jsonb can hold) as floats: not those.
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


async def _init_connection(conn: _Codecs) -> None:
    # Binary format, so jsonb columns can also be written with COPY (the batch path).
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


async def create_pool(url: str, *, schema: str, max_size: int = 10) -> Pool:
    """A connection pool whose connections resolve unqualified names in ``schema``."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        server_settings={"search_path": schema, "application_name": "baton-audit"},
    )
    return cast(Pool, pool)


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


def load_migrations() -> list[Migration]:
    """The service's ``migrations/NNNN_name.sql`` files, in version order."""
    found: list[Migration] = []
    for entry in resources.files("baton_audit").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def migrate(pool: Pool, *, schema: str) -> list[int]:
    """Apply the migrations ``schema`` lacks, each in its own transaction; return their versions.

    A transaction-scoped advisory lock per schema serialises replicas starting together,
    so each migration is applied exactly once.
    """
    applied: list[int] = []
    table = _MIGRATIONS_TABLE
    async with pool.acquire() as conn:
        for migration in load_migrations():
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
