"""``CorkedTransport``: the writes of one loop turn reach the socket in one ``write``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from baton_ingest.corked import CorkedTransport


@dataclass
class _Transport:
    writes: list[bytes] = field(default_factory=list)
    closed: bool = False
    paused: bool = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True


async def test_one_turns_writes_go_out_together_in_order() -> None:
    transport = _Transport()
    corked = CorkedTransport(transport)  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    corked.write(b'{"accepted":true}')
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b'HTTP/1.1 202 Accepted\r\n\r\n{"accepted":true}']

    corked.write(b"next")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"next"]


async def test_close_writes_what_is_pending_first_and_the_rest_passes_through() -> None:
    transport = _Transport()
    corked = CorkedTransport(transport)  # type: ignore[arg-type]
    corked.pause_reading()
    corked.write(b"last words")
    corked.close()
    await asyncio.sleep(0)
    assert transport.writes == [b"last words"]
    assert transport.closed
    assert transport.paused
