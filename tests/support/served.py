"""An ASGI app served by uvicorn on 127.0.0.1 in a thread, for tests that drive the CLI
(which runs its own event loop) against a live service."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApp:
    """``app`` served in a thread; ``start`` returns once uvicorn listens."""

    def __init__(self, app: FastAPI, name: str = "app-under-test") -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, within: float = 60) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + within
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise TimeoutError(f"{self._thread.name} did not start within {within}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)
