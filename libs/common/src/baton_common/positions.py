"""A consumer's position per partition, stored in PostgreSQL with what it applied.

A projection (audit, approvals) keeps ``consumer_positions`` (topic, kafka_partition,
next_offset) in its own schema: a batch locks the partition's position, applies its
records and stores the new one in the same transaction, so each record is applied once
(DESIGN.md rule 8), whatever Kafka's committed offsets say.
"""

from __future__ import annotations

from collections.abc import Iterable

from baton_common.postgres import Connection, Pool, column

__all__ = ["lock_position", "store_position", "stored_positions"]


async def lock_position(conn: Connection, topic: str, partition: int) -> int:
    """Lock the partition's position for this transaction; 0 if it had none."""
    await conn.execute(
        "insert into consumer_positions (topic, kafka_partition, next_offset)"
        " values ($1, $2, 0) on conflict do nothing",
        topic,
        partition,
    )
    row = await conn.fetchrow(
        "select next_offset from consumer_positions"
        " where topic = $1 and kafka_partition = $2 for update",
        topic,
        partition,
    )
    assert row is not None  # inserted just above, in this transaction
    return column(row, "next_offset", int)


async def store_position(conn: Connection, topic: str, partition: int, offset: int) -> None:
    await conn.execute(
        "update consumer_positions set next_offset = $3 where topic = $1 and kafka_partition = $2",
        topic,
        partition,
        offset,
    )


async def stored_positions(pool: Pool, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The next offset to apply of every partition of ``topics`` that has one."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select topic, kafka_partition, next_offset from consumer_positions"
            " where topic = any($1::text[])",
            sorted(set(topics)),
        )
    positions: dict[tuple[str, int], int] = {}
    for row in rows:
        key = (column(row, "topic", str), column(row, "kafka_partition", int))
        positions[key] = column(row, "next_offset", int)
    return positions
