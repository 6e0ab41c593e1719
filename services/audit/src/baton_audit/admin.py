"""Operations on the whole store: its checksum, positions, and the tables a rebuild empties."""

from __future__ import annotations

import hashlib
from typing import Final

from baton_audit.db import Pool, column

__all__ = ["PROJECTED_TABLES", "checksum", "positions"]

PROJECTED_TABLES: Final = {
    "events": "kafka_topic, kafka_partition, kafka_offset",
    "runs": "run_id",
    "approvals": "gate_id",
    "step_attempts": "run_id, attempt_id",
    "ai_interactions": "run_id, attempt_id",
    "stories": "story_id, version",
    "story_approvals": "story_id, version, approver",
}
"""Every table the projection writes, with its primary key (the checksum's row order)."""

# A run's state is stored as json text (ADR 0560); the checksum renders it as jsonb, as it
# was stored before: the same contents give the same figure whatever the text's spelling.
_ROWS: Final = {
    "runs": "(select run_id, story_id, story_version, status, started_at, ended_at, last_seq,"
    " correlation_id, dedup_key, event_count, updated_at, state::jsonb as state from runs)",
}


async def checksum(pool: Pool) -> tuple[str, dict[str, int]]:
    """A SHA-256 over every projected row, in key order, and each table's row count.

    Rows are rendered by PostgreSQL in UTC, so the figure depends only on the contents:
    a rebuild from the same log gives the same checksum.
    """
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("set local timezone = 'UTC'")
        for table, key in PROJECTED_TABLES.items():
            row = await conn.fetchrow(
                f"select count(*) as n, coalesce(md5(string_agg(md5(t::text), '' order by {key})),"
                f" '') as h from {_ROWS.get(table, table)} t"
            )
            assert row is not None  # an aggregate always returns a row
            counts[table] = column(row, "n", int)
            digest.update(f"{table}:{counts[table]}:{column(row, 'h', str)};".encode())
    return digest.hexdigest(), counts


async def positions(pool: Pool) -> dict[str, dict[int, int]]:
    """The next offset to apply of every partition the store has a position for."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select topic, kafka_partition, next_offset from consumer_positions"
            " order by topic, kafka_partition"
        )
    found: dict[str, dict[int, int]] = {}
    for row in rows:
        found.setdefault(column(row, "topic", str), {})[column(row, "kafka_partition", int)] = (
            column(row, "next_offset", int)
        )
    return found
