"""The executor's wiring and settings, without starting Kafka clients."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from baton_executor.actions.http import HttpAction
from baton_executor.main import build_actions, create_app
from baton_executor.policy_enforcement import PolicyEnforced
from baton_executor.settings import ExecutorSettings


def test_settings_defaults() -> None:
    settings = ExecutorSettings()

    assert settings.http_port == 8083
    assert settings.queues == ["default"]
    assert settings.concurrency == 16
    assert settings.group_id == "baton-executor"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_EXECUTOR_QUEUES", '["default", "ai"]')
    monkeypatch.setenv("BATON_EXECUTOR_CONCURRENCY", "4")
    monkeypatch.setenv("BATON_TOPICS__TASKS_PREFIX", "t.")

    settings = ExecutorSettings()

    assert settings.queues == ["default", "ai"]
    assert settings.concurrency == 4
    assert [settings.topics.task_topic(q) for q in settings.queues] == ["t.default", "t.ai"]


async def test_the_registry_holds_the_action_kinds() -> None:
    async with httpx.AsyncClient() as client:
        actions = build_actions(ExecutorSettings(), client)

    assert set(actions) == {
        "http",
        "transform",
        "ai.classify",
        "ai.extract",
        "ai.agent",
        "notify.slack",
        "notify.email",
        "mcp.call",
    }
    http = actions["http"]
    assert isinstance(http, PolicyEnforced)  # the final request meets the policy (ADR 0910)
    assert isinstance(http.inner, HttpAction)


async def test_the_app_serves_operations_and_is_not_ready_before_it_starts() -> None:
    app = create_app(ExecutorSettings(), registry=CollectorRegistry())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://executor") as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert set(ready.json()["reasons"]) == {"kafka_producer", "task_consumer"}
        assert "baton_executor_step_attempts_total" in (await client.get("/metrics")).text
