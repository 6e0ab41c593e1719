"""A private Kafka broker for tests that stop or restart Kafka.

It runs through deploy/local/kafka.sh in a temporary stack directory on free ports, so
stopping it disturbs no other test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from platform_kit import free_port

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["Broker"]


class Broker:
    """A private Kafka broker run through deploy/local/kafka.sh."""

    def __init__(self, stack_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "BATON_STACK_DIR": str(stack_dir),
            "BATON_KAFKA_PORT": str(self.port),
            "BATON_KAFKA_CONTROLLER_PORT": str(free_port()),
            "BATON_KAFKA_HEAP": "256m",
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        subprocess.run(
            [str(ROOT / "deploy/local/kafka.sh"), command],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")
