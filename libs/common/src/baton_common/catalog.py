"""The story catalog: every published story version, read from ``baton.stories``.

Services that need stories (ingest for triggers, the scheduler for runs) keep one
catalog, fed by a consumer that reads the compacted topic from the beginning.

Change control (ADR 0911): a version published as a ``draft`` is not live (no trigger
starts it, no run may use it) until ``reviewers`` people other than its author approved
it with ``StoryApproved`` records; an approval by the author is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord, read_to_end
from baton_common.records import StoryApproved, StoryPublished
from baton_common.story import Story

__all__ = ["Catalog", "StoryCatalog", "follow_stories"]

log = structlog.get_logger(__name__)


class StoryCatalog:
    """Published story versions by id and version; the newest version is the active one."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, StoryPublished]] = {}
        self._approvals: dict[tuple[str, int], set[str]] = {}
        self._live: dict[str, dict[int, StoryPublished]] = {}  # kept current by add/approve
        self._changed = asyncio.Event()
        self._by_path: dict[str, tuple[Story, ...]] | None = None

    def add(self, published: StoryPublished) -> None:
        story = published.story
        versions = self._versions.setdefault(story.id, {})
        versions[story.version] = published
        self._refresh(story.id)
        self._changed.set()

    def approve(self, approval: StoryApproved) -> str | None:
        """Record a change-control approval; return why it does not count, if it does not."""
        key = (approval.story_id, approval.version)
        published = self._versions.get(approval.story_id, {}).get(approval.version)
        author = published.author if published is not None else approval.author
        if author is not None and approval.approver == author:
            return f"{approval.approver} is the author of {approval.story_id} v{approval.version}"
        self._approvals.setdefault(key, set()).add(approval.approver)
        self._refresh(approval.story_id)
        self._changed.set()
        return None

    def is_live(self, published: StoryPublished) -> bool:
        """Whether a version may run: not a draft, or approved by enough people other than
        its author."""
        if not published.draft:
            return True
        story = published.story
        approvers = self._approvals.get((story.id, story.version), set()) - {published.author}
        return len(approvers) >= max(1, published.reviewers)

    def _refresh(self, story_id: str) -> None:
        self._by_path = None
        versions = self._versions.get(story_id, {})
        self._live[story_id] = {v: p for v, p in versions.items() if self.is_live(p)}

    def _live_versions(self, story_id: str) -> dict[int, StoryPublished]:
        return self._live.get(story_id, {})

    def get(self, story_id: str, version: int | None = None) -> Story | None:
        """A live story version, or the newest live version when ``version`` is None."""
        versions = self._live_versions(story_id)
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
        """The newest live version of every story."""
        for story_id in self._versions:
            if versions := self._live_versions(story_id):
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
            if envelope.type == StoryApproved.model_fields["type"].default:
                return self.approve(StoryApproved.model_validate(envelope.data))
            self.add(StoryPublished.model_validate(envelope.data))
        except (EnvelopeError, ValidationError) as exc:
            return str(exc)
        return None


class Catalog(Protocol):
    def apply(self, record: ConsumedRecord) -> str | None:
        """Take one record of the followed topic; return the reason if it is unusable."""
        ...


async def follow_stories(
    consumer: AIOKafkaConsumer, catalog: Catalog, ready: asyncio.Event
) -> None:
    """Feed ``catalog`` forever; set ``ready`` once it has read the topic to its end.

    ``consumer`` must be started, have no group, and be built with the catalog's topic
    (``baton.stories``, or ``baton.policies`` for a :class:`PolicyCatalog`).
    """
    async for record in read_to_end(consumer):
        _apply(catalog, record)
    ready.set()
    log.info("catalog ready", catalog=type(catalog).__name__)
    while True:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            for record in records:
                _apply(catalog, record)


def _apply(catalog: Catalog, record: ConsumedRecord) -> None:
    if (reason := catalog.apply(record)) is not None:
        log.warning("catalog record skipped", offset=record.offset, reason=reason)
