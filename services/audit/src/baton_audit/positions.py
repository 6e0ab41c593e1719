"""Where the projection stands in each partition, stored with the rows it applied (ADR 8).

A partition's position is the next offset to apply; a batch locks it, applies its records
and stores the new one in the same transaction. Replicas of the audit service (one
consumer group) share the table: each partition is owned by one of them at a time, and a
rebuild on any of them empties it for all (ADR 0571).
"""

from __future__ import annotations

from baton_common.positions import lock_position, store_position, stored_positions

__all__ = ["StalePosition", "lock_position", "store_position", "stored_positions"]


class StalePosition(Exception):
    """The stored position is not the one this projector last stored or sought: another
    replica emptied the store (a rebuild) or applied the partition meanwhile. The batch is
    dropped and the partition read again from ``stored``."""

    def __init__(self, topic: str, partition: int, stored: int, expected: int) -> None:
        super().__init__(
            f"{topic}:{partition}: stored position {stored}, this projector expected {expected}"
        )
        self.stored = stored
