"""Topic provisioning: create Baton's topics with their cleanup policies (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from baton_common.settings import TopicSettings

__all__ = ["TopicSpec", "provision_topics", "topic_specs"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """Every topic Baton needs, from its settings."""
    rf = topics.replication_factor

    def delete(retention_ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(retention_ms)}

    task_topics = [topics.task_topic(q) for q in topics.task_queues]
    return [
        TopicSpec(topics.stories, 1, rf, {"cleanup.policy": "compact"}),
        TopicSpec(topics.ingest, topics.ingest_partitions, rf, delete(topics.ingest_retention_ms)),
        TopicSpec(
            topics.commands,
            topics.partitions,
            rf,
            # the broker's clock stamps commands: a decision's "now" (DESIGN.md rule 2)
            {**delete(topics.commands_retention_ms), "message.timestamp.type": "LogAppendTime"},
        ),
        TopicSpec(topics.runs, topics.partitions, rf, delete(topics.runs_retention_ms)),
        *(
            TopicSpec(t, topics.partitions, rf, delete(topics.tasks_retention_ms))
            for t in task_topics
        ),
        TopicSpec(topics.approvals, topics.partitions, rf, delete(topics.tasks_retention_ms)),
        TopicSpec(topics.dlq, 1, rf, delete(topics.dlq_retention_ms)),
        TopicSpec(topics.schedules, 1, rf, {"cleanup.policy": "compact"}),
        TopicSpec(topics.policies, 1, rf, {"cleanup.policy": "compact"}),
        # keys name the baton.runs topic and partition a snapshot covers (ADR 0102)
        TopicSpec(topics.snapshots, 1, rf, {"cleanup.policy": "compact"}),
    ]


async def provision_topics(bootstrap: str, topics: TopicSettings) -> tuple[list[str], list[str]]:
    """Create the topics that are missing; return (created, already present).

    Raises:
        RuntimeError: if an existing topic's partition count differs from the settings,
            since ``baton.commands`` and ``baton.runs`` must stay aligned partition by partition.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="baton-provision")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = topic_specs(topics)
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config)
                    for s in missing
                ]
            )
        present = [s for s in specs if s.name in existing]
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in present:
                if counts.get(spec.name) != spec.partitions:
                    raise RuntimeError(
                        f"topic {spec.name} has {counts.get(spec.name)} partitions, "
                        f"settings say {spec.partitions}"
                    )
        return [s.name for s in missing], [s.name for s in present]
    finally:
        await admin.close()
