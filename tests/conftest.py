"""Shared fixtures: endpoints of the real Kafka and PostgreSQL started by deploy/local."""

from __future__ import annotations

import os

import pytest


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
