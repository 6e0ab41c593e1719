"""The policies in force: the newest version of every policy on ``baton.policies``.

Services that evaluate policies (the scheduler at run start and dispatch) keep one
catalog, fed by :func:`follow_policies` like the story catalog.
"""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from baton_common.catalog import follow_stories
from baton_common.envelope import EnvelopeError, decode_record
from baton_common.kafka import ConsumedRecord
from baton_common.policy import Policy, PolicyPublished

__all__ = ["PolicyCatalog", "follow_policies"]

log = structlog.get_logger(__name__)


class PolicyCatalog:
    """Published policy versions; the newest version of each policy id is in force."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[int, PolicyPublished]] = {}
        self._current: tuple[Policy, ...] = ()

    def add(self, published: PolicyPublished) -> None:
        policy = published.policy
        self._versions.setdefault(policy.id, {})[policy.version] = published
        self._current = tuple(
            versions[max(versions)].policy for _, versions in sorted(self._versions.items())
        )

    def current(self) -> tuple[Policy, ...]:
        """The policies in force, by id."""
        return self._current

    def get(self, policy_id: str, version: int) -> Policy | None:
        published = self._versions.get(policy_id, {}).get(version)
        return published.policy if published is not None else None

    def apply(self, record: ConsumedRecord) -> str | None:
        """Add a ``baton.policies`` record; return the reason if it is unusable."""
        try:
            envelope = decode_record(record.value, record.headers)
            self.add(PolicyPublished.model_validate(envelope.data))
        except (EnvelopeError, ValidationError) as exc:
            return str(exc)
        return None


async def follow_policies(
    consumer: AIOKafkaConsumer, topic: str, catalog: PolicyCatalog, ready: asyncio.Event
) -> None:
    """Feed ``catalog`` from ``topic`` like :func:`follow_stories`. While the topic does not
    exist (a cluster provisioned before policies existed) nothing is in force."""
    if topic not in await consumer.topics():
        log.warning("no policy topic yet: no policies in force", topic=topic)
        ready.set()
        present = False
        while not present:  # metadata is polled: there is no event to wait for
            await asyncio.sleep(10)
            present = topic in await consumer.topics()
    await follow_stories(consumer, catalog, ready)
