"""Fixtures shared by the ingest tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .paths import WEBHOOK_PATH


@pytest.fixture(params=["fast path", "route"])
def webhook_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test once through ``WebhookFastPath`` and once through the plain route."""
    token = WEBHOOK_PATH.set(request.param)
    yield request.param
    WEBHOOK_PATH.reset(token)
