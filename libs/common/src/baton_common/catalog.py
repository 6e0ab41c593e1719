"""The story catalog: every published story version, read from ``baton.stories``.

Services that need stories (ingest for triggers, the scheduler for runs) keep one
catalog, fed by a consumer that reads the compacted topic from the beginning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord, read_to_end
from baton_common.records import StoryPublished
from baton_common.story import Story

__all__ = ["StoryCatalog", "follow_stories"]

log = structlog.get_logger(__name__)


class StoryCatalog:
    """Published story versions by id and version; the newest version is the active one."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, StoryPublished]] = {}
        self._changed = asyncio.Event()
        self._by_path: dict[str, tuple[Story, ...]] | None = None

    def add(self, published: StoryPublished) -> None:
        story = published.story
        self._versions.setdefault(story.id, {})[story.version] = published
        self._by_path = None
        self._changed.set()

    def get(self, story_id: str, version: int | None = None) -> Story | None:
        """A story version, or the newest version when ``version`` is None."""
        versions = self._versions.get(story_id)
        if not versions:
            return None
        published = versions.get(version if version is not None else max(versions))
        return published.story if published is not None else None

    async def wait_for(self, story_id: str, version: int | None, within: float) -> Story | None:
        """The story version, waiting up to ``within`` seconds for it to be read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (story := self.get(story_id, version)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.get(story_id, version)
        return story

    def published(self, story_id: str, version: int) -> StoryPublished | None:
        return self._versions.get(story_id, {}).get(version)

    def active(self) -> Iterable[Story]:
        """The newest version of every story."""
        for versions in self._versions.values():
            yield versions[max(versions)].story

    def for_webhook(self, path: str) -> list[Story]:
        """Active stories whose webhook trigger listens on ``path``.

        Looked up in an index built once per change of the catalog: intake and routing
        ask for every event.
        """
        if self._by_path is None:
            by_path: dict[str, list[Story]] = {}
            for story in self.active():
                if story.trigger.webhook is not None:
                    by_path.setdefault(story.trigger.webhook.path, []).append(story)
            self._by_path = {p: tuple(stories) for p, stories in by_path.items()}
        return list(self._by_path.get(path, ()))

    def apply(self, record: ConsumedRecord) -> str | None:
        """Add a ``baton.stories`` record; return the reason if it is unusable."""
        try:
            envelope = decode_record(record.value, record.headers)
            self.add(StoryPublished.model_validate(envelope.data))
        except (EnvelopeError, ValidationError) as exc:
            return str(exc)
        return None


async def follow_stories(
    consumer: AIOKafkaConsumer, catalog: StoryCatalog, ready: asyncio.Event
) -> None:
    """Feed ``catalog`` forever; set ``ready`` once it has read the topic to its end.

    ``consumer`` must be started, have no group, and be built with the stories topic.
    """
    async for record in read_to_end(consumer):
        _apply(catalog, record)
    ready.set()
    log.info("story catalog ready", stories=sum(1 for _ in catalog.active()))
    while True:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            for record in records:
                _apply(catalog, record)


def _apply(catalog: StoryCatalog, record: ConsumedRecord) -> None:
    if (reason := catalog.apply(record)) is not None:
        log.warning("story record skipped", offset=record.offset, reason=reason)
