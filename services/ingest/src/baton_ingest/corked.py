"""uvicorn's httptools protocol writing an answer's head and body in one ``write``, and
answering webhooks from its parser's callbacks (ADR 0263).

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
import re
from collections import deque
from functools import partial
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from baton_common.telemetry import tracing_enabled
from baton_ingest.api import Answer, Publishing, WebhookEndpoint, WebhookFastPath

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
    """uvicorn's ``httptools`` protocol over a :class:`CorkedTransport`, answering
    webhooks from the parser's callbacks (ADR 0263).

    When the app uvicorn serves is a :class:`WebhookFastPath`, a plain ``POST
    /webhooks/{path}`` (HTTP/1.1, a ``content-length`` within the body limit, no
    ``transfer-encoding``, no ``expect``, no query, nothing pending on the connection but
    other such webhooks, tracing off) never becomes an ASGI request: its headers and body
    are collected from the callbacks and handed to the endpoint's ``respond`` (the same
    checks and code as the ASGI entry), and the answer goes out in one ``write`` once
    Kafka acknowledged, with uvicorn's default headers and ``connection: close`` as
    uvicorn would write them. There is no ``RequestResponseCycle``, task or ASGI message.
    Answers leave in the order the requests came (a later one waits for an earlier
    one's); a request that is not such a webhook and comes after pending webhook
    answers is queued in uvicorn's own pipeline until they are written. Every other
    request is uvicorn's, unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        endpoint = app.endpoint if isinstance(app, WebhookFastPath) else None
        plain = self.limit_concurrency is None and not self.root_path
        self._endpoint: WebhookEndpoint | None = endpoint if plain else None
        self._answers: deque[_Webhook] = deque()  # in arrival order, awaiting their write
        self._webhook: _Webhook | None = None  # the request being read, when a webhook
        self._declared: bytes | None = None
        self._unusual = False
        self._close_after = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked: Any = CorkedTransport(transport)
        super().connection_made(corked)

    def connection_lost(self, exc: Exception | None) -> None:
        self._answers.clear()  # their publishes go on; nobody is left to answer
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._webhook = None
        self._declared = None
        self._unusual = False

    def on_header(self, name: bytes, value: bytes) -> None:
        field = name.lower()
        if field == b"content-length":
            if self._declared is not None:
                self._unusual = True
            self._declared = value
        elif field == b"transfer-encoding" or field == b"expect":
            self._unusual = True
            if field == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
        self.headers.append((field, value))

    def on_headers_complete(self) -> None:
        endpoint = self._endpoint
        parser = self.parser
        if self._close_after:  # after a request that closes the connection: never read
            self._webhook = _IGNORED
            return
        if (
            endpoint is not None
            and not self._unusual
            and self._declared is not None
            and self.url.startswith(_PREFIX)
            and parser.get_method() == b"POST"
            and parser.get_http_version() == "1.1"
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and not tracing_enabled()
        ):
            trigger = self.url[len(_PREFIX) :]
            declared = self._declared
            if (
                trigger
                and trigger.isascii()
                and not _UNUSUAL_PATH.search(trigger)
                and declared.isdigit()
                and int(declared) <= endpoint.max_body_bytes
            ):
                self._webhook = _Webhook(trigger.decode("ascii"), self.headers, parser)
                return
        self._to_asgi()

    def _to_asgi(self) -> None:
        """The request goes to uvicorn's own handling (its scope built here, not in
        ``on_message_begin``), behind any webhook answers still pending."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.expect_100_continue = url, expect
        self.headers = self.scope["headers"] = headers
        if not self._answers:
            super().on_headers_complete()
            return
        previous = self.cycle
        self.cycle = _WAITING  # uvicorn queues the request in its pipeline behind this
        super().on_headers_complete()
        if self.cycle is _WAITING:  # an upgrade: no cycle made
            self.cycle = previous

    def on_body(self, body: bytes) -> None:
        webhook = self._webhook
        if webhook is None:
            super().on_body(body)
        elif webhook is not _IGNORED:
            webhook.chunks.append(body)

    def on_message_complete(self) -> None:
        webhook = self._webhook
        if webhook is None:
            super().on_message_complete()
            return
        self._webhook = None
        if webhook is _IGNORED:
            return
        if not webhook.keep_alive:
            self._close_after = True
        answers = self._answers
        answers.append(webhook)
        if len(answers) > 1:  # pipelined: read no more until the earlier are answered
            self.flow.pause_reading()
        chunks = webhook.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        endpoint = self._endpoint
        assert endpoint is not None
        try:
            outcome = endpoint.respond(webhook.path, webhook.headers, body)
            if isinstance(outcome, Publishing):
                outcome.when_settled(partial(self._published, webhook, outcome))
                return
            webhook.answer = self._encode(webhook, outcome)
        except Exception as exc:
            self._failed(webhook, exc)
        self._write_answers()

    def _published(self, webhook: _Webhook, publishing: Publishing) -> None:
        try:
            webhook.answer = self._encode(webhook, publishing.answer())
        except Exception as exc:
            self._failed(webhook, exc)
        self._write_answers()

    def _failed(self, webhook: _Webhook, exc: Exception) -> None:
        """uvicorn's answer to an app that failed: 500, and the connection closes."""
        self.logger.error("Exception in ASGI application\n", exc_info=exc)
        webhook.keep_alive = False
        self._close_after = True
        webhook.answer = b"".join(
            [
                STATUS_LINE[500],
                _defaults(self.server_state.default_headers),
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n",
                b"connection: close\r\n\r\nInternal Server Error",
            ]
        )

    def _encode(self, webhook: _Webhook, answer: Answer) -> bytes:
        """The answer as uvicorn writes an ASGI answer with these headers."""
        status, headers, content = answer
        parts = [STATUS_LINE[status], _defaults(self.server_state.default_headers)]
        for field, value in headers:
            parts += (field, b": ", value, b"\r\n")
        parts += (b"content-length: ", str(len(content)).encode(), _JSON_TAIL)
        if not webhook.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", content)
        return b"".join(parts)

    def _write_answers(self) -> None:
        """Write the answers that are ready and due (every earlier one written)."""
        answers = self._answers
        transport = self.transport
        while answers and answers[0].answer is not None:
            if transport.is_closing():
                answers.clear()
                return
            if self.flow.write_paused:  # the client reads no more: hold them
                self.flow.pause_reading()
                return
            webhook = answers.popleft()
            assert webhook.answer is not None
            transport.write(webhook.answer)
            self.server_state.total_requests += 1
            if not webhook.keep_alive:
                answers.clear()
                transport.close()
                return
        if answers:
            return
        if self._close_after:  # shut down while answers were pending
            transport.close()
            return
        # As uvicorn after an answer: read on, start a queued request, or keep alive.
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self.cycle is None or self.cycle.response_complete:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._answers:
            self._write_answers()

    def shutdown(self) -> None:
        if not self._answers:
            super().shutdown()
            return
        self._close_after = True  # close once the pending answers are written
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False


class _Webhook:
    """A request on the protocol's webhook path: what it sent, and its answer once made."""

    __slots__ = ("answer", "chunks", "headers", "keep_alive", "path")

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]], parser: Any) -> None:
        self.path = path
        self.headers = headers
        self.chunks: list[bytes] = []
        self.keep_alive: bool = parser.should_keep_alive() if parser is not None else False
        self.answer: bytes | None = None


class _Waiting:
    """Stands for pending webhook answers as uvicorn's current cycle: not complete."""

    response_complete = False
    keep_alive = True


_PREFIX: Final = b"/webhooks/"
_UNUSUAL_PATH: Final = re.compile(rb"[/%?#;]")
_JSON_TAIL: Final = b"\r\ncontent-type: application/json\r\n"
_IGNORED: Final = _Webhook("", [], None)
_WAITING: Any = _Waiting()


class _Defaults:
    """uvicorn's default headers (``date``, ``server``) as bytes, made once per change."""

    source: list[tuple[bytes, bytes]] | None = None
    encoded: bytes = b""


def _defaults(headers: list[tuple[bytes, bytes]]) -> bytes:
    if headers is not _Defaults.source:  # the server replaces the list every second
        _Defaults.encoded = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        _Defaults.source = headers
    return _Defaults.encoded
