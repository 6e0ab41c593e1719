"""What the tests' fake HTTP servers share: a handler served on 127.0.0.1 in a thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHttpServer:
    """Serves a handler on 127.0.0.1 (a free port) from ``with`` entry to exit.

    A fake defines its handler class in ``__init__`` (closing over the fake) and hands it
    to :meth:`serve`; :attr:`root` is the server's base URL.
    """

    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def serve(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        daemon_threads: bool = False,
        poll_interval: float = 0.5,
    ) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = daemon_threads
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
