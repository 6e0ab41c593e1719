"""The CLI's Kafka operations for governance: policies and change-control approvals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import make_consumer, make_producer, outbound, read_to_end, to_envelope
from baton_common.policy import Policy, PolicyPublished
from baton_common.records import StoryApproved
from baton_common.settings import TopicSettings

__all__ = ["publish_approval", "publish_policies", "read_approvals", "read_policies"]


async def read_policies(bootstrap: str, topics: TopicSettings) -> dict[str, PolicyPublished]:
    """Every policy version on ``baton.policies``, by ``id:version``."""
    consumer = make_consumer(bootstrap, topics.policies, group_id=None, client_id="baton-cli")
    await consumer.start()
    try:
        found: dict[str, PolicyPublished] = {}
        if topics.policies not in await consumer.topics():
            return found  # provisioned before policies existed: none in force
        async for record in read_to_end(consumer):
            try:
                published = PolicyPublished.model_validate(
                    decode_record(record.value, record.headers).data
                )
            except (EnvelopeError, ValueError):
                continue
            found[published.policy.key] = published
        return found
    finally:
        await consumer.stop()


def in_force(published: dict[str, PolicyPublished]) -> list[Policy]:
    """The newest version of each policy id."""
    newest: dict[str, Policy] = {}
    for record in published.values():
        policy = record.policy
        if policy.id not in newest or newest[policy.id].version < policy.version:
            newest[policy.id] = policy
    return [newest[k] for k in sorted(newest)]


async def publish_policies(
    bootstrap: str, topics: TopicSettings, policies: list[tuple[Policy, str]], author: str
) -> list[str]:
    """Publish policy versions; an identical version already published is skipped.

    Raises:
        ValueError: if a version was already published with different content.
    """
    existing = await read_policies(bootstrap, topics)
    for policy, _ in policies:
        old = existing.get(policy.key)
        if old is not None and old.policy != policy:
            raise ValueError(
                f"policy {policy.id} version {policy.version} is already published with "
                f"different content; versions are immutable, publish version {policy.version + 1}"
            )
    lines = []
    producer = make_producer(bootstrap, client_id="baton-cli")
    await producer.start()
    try:
        for policy, source in policies:
            if policy.key in existing:
                lines.append(f"policy {policy.key} already published (unchanged)")
                continue
            envelope = to_envelope(
                PolicyPublished(policy=policy, source=source, author=author),
                id=str(uuid.uuid4()),
                source="baton/cli",
                time=datetime.now(UTC),
                subject=policy.key,
                actor=author,
            )
            await outbound(topics.policies, policy.key, envelope).send(producer)
            lines.append(f"policy {policy.key} published")
    finally:
        await producer.stop()
    return lines


async def read_approvals(bootstrap: str, topics: TopicSettings) -> list[StoryApproved]:
    """Every change-control approval on ``baton.stories``."""
    consumer = make_consumer(bootstrap, topics.stories, group_id=None, client_id="baton-cli")
    await consumer.start()
    try:
        found = []
        async for record in read_to_end(consumer):
            try:
                envelope = decode_record(record.value, record.headers)
            except EnvelopeError:
                continue
            if envelope.type == StoryApproved.model_fields["type"].default:
                found.append(StoryApproved.model_validate(envelope.data))
        return found
    finally:
        await consumer.stop()


async def publish_approval(bootstrap: str, topics: TopicSettings, approval: StoryApproved) -> None:
    """Append a change-control approval to ``baton.stories`` (its own compacted key)."""
    key = f"{approval.story_id}:{approval.version}:approved:{approval.approver}"
    envelope = to_envelope(
        approval,
        id=str(uuid.uuid4()),
        source="baton/cli",
        time=datetime.now(UTC),
        subject=f"{approval.story_id}:{approval.version}",
        storyid=approval.story_id,
        storyversion=approval.version,
        actor=approval.approver,
    )
    producer = make_producer(bootstrap, client_id="baton-cli")
    await producer.start()
    try:
        await outbound(topics.stories, key, envelope).send(producer)
    finally:
        await producer.stop()
