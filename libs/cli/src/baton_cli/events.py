"""`baton events`: send an event to a webhook, and watch what arrives on ``baton.ingest``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from aiokafka import AIOKafkaConsumer

from baton_cli.common import fail, load_settings
from baton_common.kafka import ConsumedRecord, make_consumer

__all__ = ["events_app", "summarize"]

events_app = typer.Typer(help="Events: send to a webhook, tail the intake topic.")


def _secret(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise fail(f"environment variable {variable} is not set")
    return value


def _content_type(text: str, ndjson: bool) -> str:
    if ndjson:
        return "application/x-ndjson"
    try:
        json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:
            return "application/x-ndjson"  # the server reports any bad line
    return "application/json"


@events_app.command("send")
def events_send(
    path: Annotated[str, typer.Argument(help="the story trigger's webhook path")],
    ndjson: Annotated[bool, typer.Option("--ndjson", help="stdin is one event per line")] = False,
    hmac_secret_env: Annotated[
        str | None, typer.Option(help="sign with the key in this environment variable")
    ] = None,
    signature_header: Annotated[str, typer.Option(help="header carrying the signature")] = (
        "X-Baton-Signature"
    ),
    prefix: Annotated[str, typer.Option(help="signature prefix")] = "sha256=",
    timestamp_header: Annotated[
        str | None, typer.Option(help="also sign the current Unix time, sent in this header")
    ] = None,
    bearer_env: Annotated[
        str | None, typer.Option(help="send the token in this variable as a bearer secret")
    ] = None,
) -> None:
    """POST the JSON (or NDJSON) on stdin to ``/webhooks/<path>``; print the accepted ids."""
    config = load_settings()
    body = sys.stdin.buffer.read()
    headers = {"content-type": _content_type(body.decode(errors="replace"), ndjson)}
    key = _secret(hmac_secret_env)
    if key is not None:
        signed = body
        if timestamp_header is not None:
            stamp = str(int(time.time()))
            headers[timestamp_header] = stamp
            signed = stamp.encode() + b"." + body
        digest = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
        headers[signature_header] = prefix + digest
    token = _secret(bearer_env)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    url = f"{config.ingest_url}/webhooks/{path}"
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from exc
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"detail": response.text}
    if response.status_code != 202:
        for error in answer.get("errors", []):
            typer.echo(f"  line {error['line']}: {error['error']}", err=True)
        retry = response.headers.get("retry-after")
        hint = f" (retry after {retry}s)" if retry else ""
        raise fail(f"HTTP {response.status_code}: {answer.get('detail')}{hint}")
    for event_id in answer.get("ids") or [answer["id"]]:
        typer.echo(event_id)


def summarize(record: ConsumedRecord) -> dict[str, Any]:
    """One intake record as a dict: where it is, who sent it, and its body."""
    headers = {k: v.decode(errors="backslashreplace") for k, v in record.headers}
    try:
        value: Any = json.loads(record.value) if record.value is not None else None
    except ValueError:
        value = (record.value or b"").decode(errors="backslashreplace")
    kind = headers.get("ce_type")
    if kind == "baton.ingest.received.v1" and isinstance(value, dict):
        source, body = value.get("path"), value.get("body")
    elif kind is not None:
        source, body = headers.get("ce_source"), value
    elif headers.get("content-type", "").startswith("application/cloudevents+json") and (
        isinstance(value, dict)
    ):
        source, body, kind = value.get("source"), value.get("data"), value.get("type")
    else:
        source, body = headers.get("source"), value
    return {
        "partition": record.partition,
        "offset": record.offset,
        "id": headers.get("ce_id"),
        "type": kind,
        "source": source,
        "body": body,
    }


async def _tail(
    make: Callable[[], AIOKafkaConsumer],
    emit: Callable[[dict[str, Any]], None],
    *,
    from_beginning: bool,
    limit: int | None,
    source: str | None,
) -> None:
    consumer = make()  # inside the loop: aiokafka binds to the running loop
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        if not from_beginning:
            await consumer.seek_to_end()
        shown = 0
        while limit is None or shown < limit:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    line = summarize(record)
                    if source is not None and line["source"] != source:
                        continue
                    emit(line)
                    shown += 1
                    if limit is not None and shown >= limit:
                        return
    finally:
        await consumer.stop()


@events_app.command("tail")
def events_tail(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="start at the oldest retained record")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many records")] = None,
    source: Annotated[str | None, typer.Option(help="only this webhook path / source")] = None,
) -> None:
    """Print the records arriving on ``baton.ingest``, one JSON object per line."""
    config = load_settings()

    def consumer() -> AIOKafkaConsumer:
        return make_consumer(
            config.kafka_bootstrap, config.topics.ingest, group_id=None, client_id="baton-cli-tail"
        )

    def emit(line: dict[str, Any]) -> None:
        typer.echo(json.dumps(line, sort_keys=True))

    try:
        asyncio.run(
            _tail(consumer, emit, from_beginning=from_beginning, limit=limit, source=source)
        )
    except KeyboardInterrupt:
        pass
