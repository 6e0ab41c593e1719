"""The ingest app's wiring and settings, without starting Kafka clients."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from baton_ingest.main import create_app
from baton_ingest.settings import IngestSettings


def test_settings_defaults() -> None:
    settings = IngestSettings()

    assert settings.http_port == 8081
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.publish_timeout_seconds == 10
    assert settings.max_in_flight == 1000
    assert settings.router_group == "baton-ingest-router"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_INGEST_HTTP_PORT", "9001")
    monkeypatch.setenv("BATON_INGEST_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("BATON_INGEST_PUBLISH_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("BATON_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("BATON_INGEST_ROUTER_GROUP", "t1-router")

    settings = IngestSettings()

    assert (settings.http_port, settings.max_body_bytes) == (9001, 2048)
    assert settings.publish_timeout_seconds == 2.5
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.router_group == "t1-router"


async def test_the_app_serves_operations_and_is_not_ready_before_it_starts() -> None:
    app = create_app(IngestSettings(), registry=CollectorRegistry(), secrets=lambda _: None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert set(ready.json()["reasons"]) == {"kafka_producer", "story_catalog", "ingest_router"}
        metrics = await client.get("/metrics")
        assert "baton_ingest_webhooks_accepted_total" in metrics.text
        webhook = await client.post("/webhooks/anything", json={})
        assert webhook.status_code == 503
