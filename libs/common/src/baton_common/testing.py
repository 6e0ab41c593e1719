"""Helpers for tests of Baton services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Record", "eventually"]

T = TypeVar("T")


@dataclass
class Record:
    """A consumed record made in a test or bench, shaped like aiokafka's ``ConsumerRecord``
    (the parts :class:`baton_common.kafka.ConsumedRecord` reads)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something other than None or False.

    Raises:
        TimeoutError: naming ``what`` and the last value seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while True:
        last = await probe()
        if last is not None and last is not False:
            return last
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached within {within}s (last: {last!r})")
        await asyncio.sleep(interval)
