"""uvicorn's httptools protocol with one socket write per loop turn and connection.

uvicorn writes an answer's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``: two ``write`` calls, two
TCP segments (the socket has ``TCP_NODELAY``) and two wake-ups of the client per webhook.
:class:`CorkedHttpTools` gives uvicorn's protocol a transport that gathers the writes of
one event-loop turn and hands them to the socket together at the end of the turn
(ADR 0250). uvicorn stays the server (ADR 0240); only its transport's ``write`` changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CorkedHttpTools", "CorkedTransport"]


class CorkedTransport:
    """A transport whose writes of one loop turn reach the socket in one ``write``.

    Everything else is the wrapped transport's; ``close`` writes what is pending first.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedHttpTools(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol over a :class:`CorkedTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked: Any = CorkedTransport(transport)
        super().connection_made(corked)
