"""The running executor app's collector settings (ADR 0340), on the real Kafka."""

from __future__ import annotations

import gc
from uuid import uuid4

from prometheus_client import CollectorRegistry

from baton_common.settings import TopicSettings
from baton_common.topics import provision_topics
from baton_executor.main import create_app
from baton_executor.settings import ExecutorSettings


async def test_the_running_app_collects_rarely_and_gives_the_collector_back(
    kafka_bootstrap: str,
) -> None:
    before = gc.get_threshold()
    threshold = before[0] * 7 + 3  # not what the collector has now, nor the default
    namespace = f"rt{uuid4().hex[:8]}"
    names = {k: v for k, v in TopicSettings().model_dump().items() if isinstance(v, str)}
    topics = TopicSettings.model_validate(
        {**{k: f"{namespace}.{v}" for k, v in names.items()}, "partitions": 1}
    )
    await provision_topics(kafka_bootstrap, topics)
    settings = ExecutorSettings(
        kafka_bootstrap=kafka_bootstrap,
        group_id=f"{namespace}-executor",
        topics=topics,
        gc_threshold=threshold,
    )
    app = create_app(settings, registry=CollectorRegistry())

    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == (threshold, *before[1:])
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's way

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
