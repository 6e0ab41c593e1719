"""The webhook endpoint, over an in-memory publisher standing in for Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from baton_common.catalog import StoryCatalog
from baton_common.records import EventReceived
from baton_common.testing import eventually
from baton_ingest.api import WebhookFastPath, webhook_endpoint, webhook_routes
from baton_ingest.metrics import IngestMetrics
from baton_ingest.secrets import EnvironmentSecrets
from baton_ingest.settings import IngestSettings
from baton_ingest.signature import sign

from .fakes import FakePublisher
from .paths import WEBHOOK_PATH
from .stories import AUDIT_ALL, OPEN, TRIAGE, catalog_of, story

SECRET = "edr-key-material"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
JSON = {"content-type": "application/json"}

pytestmark = pytest.mark.usefixtures("webhook_path")


@dataclass
class Intake:
    client: httpx.AsyncClient
    publisher: FakePublisher
    registry: CollectorRegistry
    ready: asyncio.Event

    def rejected(self, reason: str) -> float:
        value = self.registry.get_sample_value(
            "baton_ingest_webhooks_rejected_total", {"reason": reason}
        )
        return value or 0.0

    def accepted(self) -> float:
        return self.registry.get_sample_value("baton_ingest_webhooks_accepted_total") or 0.0


@asynccontextmanager
async def make_intake(
    catalog: StoryCatalog | None = None,
    *,
    ready: bool = True,
    with_route: bool = True,
    **settings: object,
) -> AsyncIterator[Intake]:
    publisher = FakePublisher()
    registry = CollectorRegistry()
    catalog_ready = asyncio.Event()
    if ready:
        catalog_ready.set()
    endpoint = webhook_endpoint(
        settings=IngestSettings.model_validate(settings),
        catalog=catalog if catalog is not None else catalog_of(story(OPEN), story(TRIAGE)),
        catalog_ready=catalog_ready,
        publisher=publisher,
        secrets=EnvironmentSecrets({"BATON_SECRET_EDR_WEBHOOK_SECRET": SECRET}),
        metrics=IngestMetrics(registry),
        clock=lambda: NOW,
    )
    app = FastAPI()
    if with_route:
        app.include_router(webhook_routes(endpoint))
    if WEBHOOK_PATH.get() == "fast path":
        app.add_middleware(WebhookFastPath, endpoint=endpoint)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield Intake(client, publisher, registry, catalog_ready)


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    async with make_intake() as value:
        yield value


async def publish_called(publisher: FakePublisher, times: int = 1) -> None:
    async def probe() -> bool:
        return publisher.calls >= times

    await eventually(probe, within=5, what=f"{times} publish call(s)")


def signed(body: bytes, key: str = SECRET, prefix: str = "sha256=") -> dict[str, str]:
    return {**JSON, "X-Baton-Signature": sign(body, key.encode(), prefix)}


async def test_an_accepted_webhook_is_published_then_answered_202(intake: Intake) -> None:
    response = await intake.client.post("/webhooks/open", json={"alert_id": "a-1"})

    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] is True
    [record] = intake.publisher.published
    assert (record.topic, record.key) == ("baton.ingest", b"open")
    [envelope] = intake.publisher.envelopes()
    assert envelope.id == answer["id"]
    assert envelope.correlationid == answer["id"]
    assert envelope.source == "baton/ingest/webhook/open"
    assert envelope.time == NOW
    event = EventReceived.model_validate(envelope.data)
    assert (event.path, event.body) == ("open", {"alert_id": "a-1"})
    assert intake.accepted() == 1


async def test_202_waits_for_kafkas_acknowledgement(intake: Intake) -> None:
    intake.publisher.gate = asyncio.Event()
    request = asyncio.create_task(intake.client.post("/webhooks/open", json={"n": 1}))

    await publish_called(intake.publisher)
    await asyncio.sleep(0.05)
    assert not request.done(), "answered before the record was acknowledged"
    intake.publisher.gate.set()

    response = await request
    assert response.status_code == 202
    assert len(intake.publisher.published) == 1


async def test_an_unknown_path_is_404_with_the_reason(intake: Intake) -> None:
    response = await intake.client.post("/webhooks/nobody-home", json={})

    assert response.status_code == 404
    assert "nobody-home" in response.json()["detail"]
    assert intake.publisher.calls == 0
    assert intake.rejected("not_found") == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_only_json_bodies_are_accepted(intake: Intake, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = await intake.client.post("/webhooks/open", content=b"{}", headers=headers)

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert intake.publisher.calls == 0


async def test_json_with_a_charset_parameter_is_json(intake: Intake) -> None:
    response = await intake.client.post(
        "/webhooks/open",
        content=b'{"a": 1}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


async def test_a_body_over_the_limit_is_413() -> None:
    async with make_intake(max_body_bytes=64) as intake:
        small = await intake.client.post("/webhooks/open", content=b'{"a":1}', headers=JSON)
        large = await intake.client.post(
            "/webhooks/open", content=json.dumps({"a": "x" * 100}).encode(), headers=JSON
        )

        assert small.status_code == 202
        assert large.status_code == 413
        assert "64" in large.json()["detail"]
        assert intake.rejected("too_large") == 1


async def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    async with make_intake(max_body_bytes=64) as intake:
        response = await intake.client.post("/webhooks/open", content=chunks(), headers=JSON)

        assert response.status_code == 413
        assert intake.publisher.calls == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "got an array"),
        (b'"text"', "got a string"),
        (b'{"x": NaN}', "NaN"),
        (b"\xff\xfe{", "not valid JSON"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_422(
    intake: Intake, body: bytes, fragment: str
) -> None:
    response = await intake.client.post("/webhooks/open", content=body, headers=JSON)

    assert response.status_code == 422
    assert fragment in response.json()["detail"]
    assert intake.publisher.calls == 0


async def test_a_correctly_signed_webhook_is_accepted(intake: Intake) -> None:
    body = b'{"severity": "high", "alert_id": "a-1"}'

    response = await intake.client.post("/webhooks/edr-alerts", content=body, headers=signed(body))

    assert response.status_code == 202


@pytest.mark.parametrize(
    ("headers", "status", "reason", "fragment"),
    [
        (JSON, 401, "signature_missing", "missing signature header X-Baton-Signature"),
        (signed(b"{}", key="wrong"), 403, "signature_invalid", "does not match"),
        (signed(b"{}", prefix="sha1="), 401, "signature_malformed", "must start with 'sha256='"),
        (signed(b'{"other": "body"}'), 403, "signature_invalid", "does not match"),
    ],
)
async def test_a_webhook_without_a_valid_signature_is_refused(
    intake: Intake, headers: dict[str, str], status: int, reason: str, fragment: str
) -> None:
    response = await intake.client.post("/webhooks/edr-alerts", content=b"{}", headers=headers)

    assert response.status_code == status
    assert fragment in response.json()["detail"]
    assert intake.publisher.calls == 0
    assert intake.rejected(reason) == 1


async def test_every_signing_requirement_on_a_path_must_hold() -> None:
    other = story(
        AUDIT_ALL,
        trigger={"webhook": {"path": "edr-alerts", "signature": {"secret": "OTHER_SECRET"}}},
    )
    catalog = catalog_of(story(TRIAGE), other)
    body = b'{"severity": "high", "alert_id": "a-1"}'

    async with make_intake(catalog) as intake:
        # OTHER_SECRET is not configured: the request cannot be checked for that story.
        response = await intake.client.post(
            "/webhooks/edr-alerts", content=body, headers=signed(body)
        )

        assert response.status_code == 500
        assert response.json()["detail"] == "the webhook's secret is not configured"
        assert intake.publisher.calls == 0


async def test_a_missing_secret_is_500_without_revealing_anything() -> None:
    catalog = catalog_of(
        story(OPEN, trigger={"webhook": {"path": "open", "signature": {"secret": "NOT_SET"}}})
    )
    async with make_intake(catalog) as other:
        response = await other.client.post("/webhooks/open", json={})

        assert response.status_code == 500
        assert "NOT_SET" not in response.text
        assert other.rejected("secret_missing") == 1


async def test_too_many_webhooks_awaiting_kafka_is_429() -> None:
    async with make_intake(max_in_flight=1, retry_after_seconds=3) as intake:
        intake.publisher.gate = asyncio.Event()
        first = asyncio.create_task(intake.client.post("/webhooks/open", json={"n": 1}))
        await publish_called(intake.publisher)

        second = await intake.client.post("/webhooks/open", json={"n": 2})

        assert second.status_code == 429
        assert second.headers["retry-after"] == "3"
        assert "retry" in second.json()["detail"]
        intake.publisher.gate.set()
        assert (await first).status_code == 202
        third = await intake.client.post("/webhooks/open", json={"n": 3})
        assert third.status_code == 202


async def test_no_ack_within_the_timeout_is_503_with_retry_after() -> None:
    async with make_intake(publish_timeout_seconds=0.05, retry_after_seconds=2) as intake:
        intake.publisher.gate = asyncio.Event()  # never released

        response = await intake.client.post("/webhooks/open", json={})

        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert "did not acknowledge" in response.json()["detail"]
        assert intake.rejected("kafka_timeout") == 1
        assert intake.accepted() == 0


async def test_a_kafka_error_is_503_with_retry_after(intake: Intake) -> None:
    intake.publisher.error = RuntimeError("broker unreachable")

    response = await intake.client.post("/webhooks/open", json={})

    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert response.json() == {"detail": "the event could not be made durable"}


async def test_webhooks_wait_for_the_story_catalog() -> None:
    async with make_intake(ready=False) as intake:
        response = await intake.client.post("/webhooks/open", json={})

        assert response.status_code == 503
        assert "catalog" in response.json()["detail"]
        intake.ready.set()
        assert (await intake.client.post("/webhooks/open", json={})).status_code == 202
