"""The CLI's direct Kafka operations: provisioning and publishing stories."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import make_consumer, make_producer, outbound, read_to_end, to_envelope
from baton_common.policy import PolicyDecision
from baton_common.records import StoryPublished
from baton_common.settings import TopicSettings
from baton_common.story import Story

__all__ = ["publish_stories", "read_published"]


async def read_published(bootstrap: str, topics: TopicSettings) -> dict[str, StoryPublished]:
    """Every story version on ``baton.stories``, by ``id:version``."""
    consumer = make_consumer(bootstrap, topics.stories, group_id=None, client_id="baton-cli")
    await consumer.start()
    try:
        found: dict[str, StoryPublished] = {}
        async for record in read_to_end(consumer):
            try:
                env = decode_record(record.value, record.headers)
                published = StoryPublished.model_validate(env.data)
            except (EnvelopeError, ValueError):
                continue
            found[published.story.key] = published
        return found
    finally:
        await consumer.stop()


async def publish_stories(
    bootstrap: str,
    topics: TopicSettings,
    stories: list[tuple[Story, str]],
    *,
    author: str | None = None,
    judge: Callable[[Story], tuple[int, list[PolicyDecision]]] | None = None,
) -> list[str]:
    """Publish story versions; a version already published identically is skipped.

    ``judge`` gives a new version's change-control reviewers (0: it goes live at once, else
    it is a draft) and the policy decisions recorded with it. Returns one line per story
    saying what happened.

    Raises:
        ValueError: if a version was already published with different content
            (versions are immutable: publish a new version instead).
    """
    existing = await read_published(bootstrap, topics)
    for story, _ in stories:
        old = existing.get(story.key)
        if old is not None and old.story != story:
            raise ValueError(
                f"{story.id} version {story.version} is already published with different "
                f"content; versions are immutable, publish version {story.version + 1}"
            )
    producer = make_producer(bootstrap, client_id="baton-cli")
    await producer.start()
    lines = []
    try:
        for story, source in stories:
            if story.key in existing:
                lines.append(f"{story.key} already published (unchanged)")
                continue
            reviewers, decisions = judge(story) if judge is not None else (0, [])
            record = StoryPublished(
                story=story,
                source=source,
                author=author,
                draft=reviewers > 0,
                reviewers=reviewers,
                policy=decisions or None,
            )
            envelope = to_envelope(
                record,
                id=str(uuid.uuid4()),
                source="baton/cli",
                time=datetime.now(UTC),
                subject=story.key,
                storyid=story.id,
                storyversion=story.version,
                actor=author,
            )
            await outbound(topics.stories, story.key, envelope).send(producer)
            if reviewers:
                lines.append(
                    f"{story.key} published as a draft: it goes live once {reviewers} person(s) "
                    f"other than {author} approve it (baton stories approve {story.key})"
                )
            else:
                lines.append(f"{story.key} published")
    finally:
        await producer.stop()
    return lines
