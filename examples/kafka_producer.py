#!/usr/bin/env python3
"""Example: write alerts straight to ``baton.ingest``, skipping HTTP.

Each line of stdin is one JSON object (an alert). The record format is chosen with
``--format`` (see docs/ingest.md):

* ``binary``     CloudEvents binary mode: ``ce_*`` headers, the value is the alert.
* ``structured`` CloudEvents structured mode: the value is the whole CloudEvent.
* ``raw``        plain JSON with a ``source`` header.

``--source`` is the channel a story's ``trigger.webhook.path`` matches. The producer is
idempotent with ``acks=all``, like Baton's own, so an acknowledged alert is durable.

    printf '{"alert_id": "a-1", "severity": "high"}\\n' | \\
        python examples/kafka_producer.py --bootstrap 127.0.0.1:9092 --source edr-alerts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer


def record(
    alert: dict[str, object], fmt: str, source: str
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record value and headers for one alert in the chosen format."""
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    if fmt == "binary":
        headers = {
            "ce_specversion": "1.0",
            "ce_id": event_id,
            "ce_source": source,
            "ce_type": "com.example.alert.v1",
            "ce_time": now,
            "content-type": "application/json",
        }
        return json.dumps(alert).encode(), [(k, v.encode()) for k, v in headers.items()]
    if fmt == "structured":
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": "com.example.alert.v1",
            "time": now,
            "datacontenttype": "application/json",
            "data": alert,
        }
        return json.dumps(event).encode(), [("content-type", b"application/cloudevents+json")]
    return json.dumps(alert).encode(), [("source", source.encode())]


async def produce(bootstrap: str, topic: str, source: str, fmt: str, key: str | None) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent = []
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            alert = json.loads(line)
            value, headers = record(alert, fmt, source)
            record_key = str(alert.get(key, "")) if key else source
            sent.append(await producer.send(topic, value, key=record_key.encode(), headers=headers))
        for delivery in sent:
            await delivery  # raises if the broker did not acknowledge
    finally:
        await producer.stop()
    return len(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="baton.ingest")
    parser.add_argument("--source", required=True, help="the story trigger path to reach")
    parser.add_argument("--format", choices=["binary", "structured", "raw"], default="binary")
    parser.add_argument("--key-field", help="alert field used as the record key")
    args = parser.parse_args()
    count = asyncio.run(
        produce(args.bootstrap, args.topic, args.source, args.format, args.key_field)
    )
    print(f"produced {count} records to {args.topic}", file=sys.stderr)


if __name__ == "__main__":
    main()
