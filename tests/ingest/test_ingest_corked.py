"""``CorkedTransport``: an answer's head and body reach the socket in one ``write``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from baton_ingest.corked import CorkedTransport

HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 17\r\n\r\n"


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


async def test_a_head_goes_out_with_its_body_and_other_writes_at_once() -> None:
    transport = _Transport()
    corked = CorkedTransport(transport)  # type: ignore[arg-type]
    corked.write(HEAD)
    assert transport.writes == []
    corked.write(b'{"accepted":true}')
    assert transport.writes == [HEAD + b'{"accepted":true}']

    corked.write(b"HTTP/1.1 100 Continue")  # not a whole head: written as it comes
    assert transport.writes[1:] == [b"HTTP/1.1 100 Continue"]
    await asyncio.sleep(0)
    assert len(transport.writes) == 2


async def test_a_head_without_a_body_goes_out_at_the_end_of_the_turn() -> None:
    transport = _Transport()
    corked = CorkedTransport(transport)  # type: ignore[arg-type]
    corked.write(HEAD)
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]
    corked.write(b"next")
    assert transport.writes == [HEAD, b"next"]


async def test_close_writes_a_held_head_first_and_the_rest_passes_through() -> None:
    transport = _Transport()
    corked = CorkedTransport(transport)  # type: ignore[arg-type]
    corked.pause_reading()
    corked.write(HEAD)
    corked.close()
    await asyncio.sleep(0)
    assert transport.writes == [HEAD]
    assert transport.closed
    assert transport.paused
