"""A fresh topic on the test broker (one replica)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["create_topic"]


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="t-admin")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
