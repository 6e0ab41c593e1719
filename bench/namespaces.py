"""Topics of a benchmark's namespace, deleted when it is done.

Each benchmark run provisions its own topics (``<namespace>.baton.runs``, ...) so runs do
not see each other's records; left behind, they pile up on the benchmark stack's broker
(thousands of partitions, a start-up of minutes). A benchmark drops its namespaces when
it ends; ``python bench/namespaces.py --all`` drops every namespaced topic left by runs
that were killed (only while no benchmark runs against that broker).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from aiokafka.admin import AIOKafkaAdminClient


def namespaced(topic: str) -> str | None:
    """The namespace of a benchmark's or test's topic (``<namespace>.baton.<name>``)."""
    namespace, dot, rest = topic.partition(".")
    return namespace if dot and rest.startswith("baton.") and namespace != "baton" else None


async def drop_namespaces(bootstrap: str, namespaces: list[str] | None) -> list[str]:
    """Delete the topics of ``namespaces`` (every namespace when None); return their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="baton-bench-cleanup")
    await admin.start()
    try:
        doomed = sorted(
            topic
            for topic in await admin.list_topics()
            if (space := namespaced(topic)) is not None
            and (namespaces is None or space in namespaces)
        )
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="every namespaced topic")
    parser.add_argument("namespace", nargs="*", help="namespaces to drop")
    args = parser.parse_args()
    if not args.all and not args.namespace:
        parser.error("name the namespaces to drop, or --all")
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    dropped = asyncio.run(drop_namespaces(bootstrap, None if args.all else args.namespace))
    spaces = {namespaced(topic) for topic in dropped}
    print(f"deleted {len(dropped)} topics of {len(spaces)} namespaces on {bootstrap}")


if __name__ == "__main__":
    main()
