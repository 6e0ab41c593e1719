"""uvicorn's httptools protocol writing an answer's head and body in one ``write``.

uvicorn writes an answer's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``: two ``write`` calls, two
TCP segments (the socket has ``TCP_NODELAY``) and two wake-ups of the client per webhook.
:class:`CorkedHttpTools` gives uvicorn's protocol a transport that holds the head until
the body follows (at once, in the same task step, for the webhook fast path) and writes
both together (ADR 0250). uvicorn stays the server (ADR 0240); only its transport's
``write`` changes. (Deferring every write to the end of the loop turn instead added a
loop turn of latency under load.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CorkedHttpTools", "CorkedTransport"]


class CorkedTransport:
    """A transport that holds an answer's head until its body is written.

    A write that is a response head (``HTTP/…`` up to the blank line) is kept; the next
    write goes out with it in one ``write``. A head with no body after it in the same
    loop turn goes out at the end of the turn. Everything else is the wrapped
    transport's, in order; ``close`` writes a held head first.
    """

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if self._head:
            data = self._head + data
            self._head = b""
        elif data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._head = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            if not self._transport.is_closing():
                self._transport.write(head)

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
