"""The audit store's PostgreSQL pool, jsonb codec and migrations.

Shared helpers (migrations runner, ``column``, ``ping``) live in ``baton_common.postgres``;
the audit store needs more of asyncpg than the other stores (COPY, cursors,
``executemany``), so its protocols extend the shared ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Final, Protocol, cast

import asyncpg
import orjson

from baton_common import postgres
from baton_common.postgres import Migration, Row, column, ping, quote_ident

__all__ = [
    "Connection",
    "EncodedJsonb",
    "Migration",
    "Pool",
    "Row",
    "column",
    "create_pool",
    "has_non_finite",
    "load_migrations",
    "migrate",
    "ping",
    "quote_ident",
]

_MIGRATIONS_TABLE: Final = "audit_schema_migrations"


class Connection(postgres.Connection, Protocol):
    """The parts of ``asyncpg.Connection`` the audit store uses."""

    async def executemany(self, query: str, args: Iterable[Sequence[object]]) -> None: ...

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...

    def cursor(self, query: str, *args: object, prefetch: int | None = None) -> AsyncIterable[Row]:
        """A server-side cursor (inside a transaction) yielding rows ``prefetch`` at a time."""
        ...


class Pool(Protocol):
    """The parts of ``asyncpg.Pool`` the audit store uses."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...


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
_ROWS: Final = orjson.OPT_PASSTHROUGH_DATACLASS


class EncodedJsonb(bytes):
    """A jsonb value encoded already (version byte and JSON text): the codec passes it on.

    The projection encodes an event's payload ahead of the batch's COPY
    (``projection.event_row``).
    """


def _encode_jsonb(value: object, *, finite: bool = False, times: bool = False) -> bytes:
    if type(value) is EncodedJsonb:
        return value
    # orjson for speed (most of the projection's encoding time); the standard library for
    # what orjson refuses (integers beyond 64 bits, lone surrogates) or would turn into
    # null (NaN, infinities), so PostgreSQL gives the same verdict on them as before.
    # ``finite``: the caller knows the value holds no NaN or infinity (no check needed).
    # ``times``: aware datetimes are written as ISO 8601 text (``isoformat``'s spelling).
    try:
        encoded = orjson.dumps(value, option=_ROWS if times else _STRICT)
    except (orjson.JSONEncodeError, TypeError):
        encoded = b""
    if not encoded or (not finite and b"null" in encoded and has_non_finite(value)):
        encoded = json.dumps(
            value,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_iso_time if times else None,
        ).encode()
    return _JSONB_VERSION + encoded


def _iso_time(value: object) -> str:
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_jsonb(value: object, *, finite: bool = False, times: bool = False) -> EncodedJsonb:
    """``value`` as the codec would encode it, once, to be written as is.

    ``finite``: the caller knows ``value`` holds no NaN or infinity (e.g. orjson parsed
    it), so the check for them is skipped; the bytes are the same. ``times``: ``value``
    may hold datetimes with a zone, written as ISO 8601 text (the set-based writes' rows
    documents, ``set_writes``); orjson writes them as ``isoformat`` does, without a call
    into Python per time.
    """
    return EncodedJsonb(_encode_jsonb(value, finite=finite, times=times))


# The standard library's C encoder refuses NaN and infinities with ``allow_nan=False``: a
# check at C speed (a walk over the value in Python cost a third of the projection's time,
# since nearly every document holds a null and so needs the check).
_FINITE_ONLY: Final = json.JSONEncoder(
    allow_nan=False,
    check_circular=False,
    ensure_ascii=False,
    separators=(",", ":"),
    default=_iso_time,
)


def has_non_finite(value: object) -> bool:
    """Whether ``value`` holds a NaN or an infinity (which PostgreSQL's jsonb refuses)."""
    try:
        _FINITE_ONLY.encode(value)
    except ValueError:
        return True
    return False


def _encode_json(value: object) -> bytes:
    return _encode_jsonb(value)[1:]


def _decode_jsonb(raw: bytes) -> object:
    return _decode_json(raw[1:])


def _decode_json(text: bytes) -> object:
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
    # ``json`` (a run's state, ADR 0560) is its text in binary format: read as jsonb is.
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=_encode_json,
        decoder=_decode_json,
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


def load_migrations() -> list[Migration]:
    """The service's ``migrations/NNNN_name.sql`` files, in version order."""
    return postgres.load_migrations("baton_audit")


async def migrate(pool: Pool, *, schema: str) -> list[int]:
    """Apply the migrations ``schema`` lacks; return their versions."""
    return await postgres.migrate(
        pool, schema=schema, package="baton_audit", table=_MIGRATIONS_TABLE
    )
