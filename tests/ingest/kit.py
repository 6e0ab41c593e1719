"""Helpers for the ingest tests on the real Kafka: namespaces, ingest processes, topic reads."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from platform_kit import Service, free_port, topic_env

from baton_common.envelope import Envelope, decode_record
from baton_common.kafka import ConsumedRecord, make_consumer, read_to_end
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.topics import provision_topics


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def topics_of(namespace: str) -> TopicSettings:
    fields = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in topic_env(namespace).items()}
    return TopicSettings.model_validate(fields)


async def prepare(bootstrap: str, namespace: str, stories: list[str]) -> TopicSettings:
    """Create the namespace's topics and publish ``stories`` (YAML texts)."""
    from baton_cli.kafka_ops import publish_stories

    topics = topics_of(namespace)
    await provision_topics(bootstrap, topics)
    await publish_stories(bootstrap, topics, [(parse_story(text), text) for text in stories])
    return topics


def service(
    name: str,
    bootstrap: str,
    namespace: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    label: str | None = None,
) -> Service:
    """A service process (not started) on the namespace's topics."""
    port = free_port()
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_KAFKA_BOOTSTRAP": bootstrap,
        "BATON_LOG_LEVEL": "INFO",
        **topic_env(namespace),
        "BATON_INGEST_ROUTER_GROUP": f"{namespace}-router",
        "BATON_SCHEDULER_GROUP_ID": f"{namespace}-scheduler",
        "BATON_SCHEDULER_TRANSACTIONAL_ID": f"{namespace}-scheduler-0",
        f"BATON_{name.upper()}_HTTP_PORT": str(port),
        **(env or {}),
    }
    return Service(name, port, base, log_dir / f"{label or name}.log")


async def read_all(bootstrap: str, topic: str) -> list[ConsumedRecord]:
    """Every committed record on ``topic`` now."""
    consumer = make_consumer(bootstrap, topic, group_id=None, client_id="baton-test-reader")
    await consumer.start()
    try:
        return [record async for record in read_to_end(consumer)]
    finally:
        await consumer.stop()


async def read_envelopes(bootstrap: str, topic: str) -> list[Envelope]:
    return [decode_record(r.value, r.headers) for r in await read_all(bootstrap, topic)]
