"""Shared fixtures: endpoints of the real Kafka and PostgreSQL started by deploy/local."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_kafka import Broker


def _endpoint(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not set: `make test` starts the stack and sets it")
    pytest.skip(
        f"{name} is not set: run through `make test` (or deploy/local) for integration tests"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the real Kafka (``BATON_KAFKA_BOOTSTRAP``)."""
    return _endpoint("BATON_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def database_url() -> str:
    """URL of the real PostgreSQL (``BATON_DATABASE_URL``)."""
    return _endpoint("BATON_DATABASE_URL")


@pytest.fixture
def broker(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Broker]:
    """A private Kafka broker that a test may stop and start (see private_kafka.py)."""
    del kafka_bootstrap  # only to skip outside the integration stack, like the other tests
    broker = Broker(tmp_path / "stack")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
