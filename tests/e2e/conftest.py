"""The whole platform, as processes, for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from platform_kit import FakeHttp, Platform, build_platform, topic_env

from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.topics import provision_topics

ROOT = Path(__file__).resolve().parents[2]


def _topics(namespace: str) -> TopicSettings:
    env = topic_env(namespace)
    fields = {k.removeprefix("BATON_TOPICS__").lower(): v for k, v in env.items()}
    return TopicSettings.model_validate(fields)


@pytest.fixture(scope="session")
def platform(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """Kafka topics of a fresh namespace, the example story published, five services running."""
    from baton_cli.kafka_ops import publish_stories

    log_dir = tmp_path_factory.mktemp("service-logs")
    platform = build_platform(kafka_bootstrap, database_url, log_dir)
    topics = _topics(platform.namespace)
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    text = (ROOT / "examples/stories/hello-approval.yaml").read_text()
    asyncio.run(publish_stories(kafka_bootstrap, topics, [(parse_story(text), text)]))
    try:
        for service in platform.services.values():
            service.start()
        for service in platform.services.values():
            service.wait_ready()
        yield platform
    finally:
        platform.stop()
        for service in platform.services.values():
            print(f"--- {service.name} log tail ---\n{service.tail(15)}")


@pytest.fixture
def fake_http() -> Iterator[FakeHttp]:
    """An outside HTTP service that records what Baton did to it."""
    with FakeHttp() as server:
        yield server


@pytest.fixture(scope="session")
def topics(platform: Platform) -> TopicSettings:
    return _topics(platform.namespace)
