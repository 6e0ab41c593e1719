"""Every service answers ``GET /whoami`` for a valid token (401 otherwise), keeps
``/healthz`` and ``/metrics`` open, and ``baton whoami`` shows the token's identity."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from roles_kit import AUTH, bearer
from served import ServedApp
from typer.testing import CliRunner

from baton_approvals.main import create_app as approvals_app
from baton_approvals.settings import ApprovalsSettings
from baton_audit.main import create_app as audit_app
from baton_audit.settings import AuditSettings
from baton_cli.main import app as cli
from baton_common.auth import Gatekeeper, authenticator_of, identity_router
from baton_executor.main import create_app as executor_app
from baton_executor.settings import ExecutorSettings
from baton_ingest.main import create_app as ingest_app
from baton_ingest.settings import IngestSettings
from baton_scheduler.main import create_app as scheduler_app
from baton_scheduler.settings import SchedulerSettings

APPS: dict[str, Callable[[], FastAPI]] = {
    "ingest": lambda: ingest_app(IngestSettings(auth=AUTH), registry=CollectorRegistry()),
    "scheduler": lambda: scheduler_app(SchedulerSettings(auth=AUTH)),
    "executor": lambda: executor_app(ExecutorSettings(auth=AUTH), registry=CollectorRegistry()),
    "approvals": lambda: approvals_app(ApprovalsSettings(auth=AUTH)),
    "audit": lambda: audit_app(AuditSettings(auth=AUTH)),
}


@pytest.mark.parametrize("service", APPS)
async def test_every_service_says_who_a_token_is_and_keeps_probes_open(service: str) -> None:
    app = APPS[service]()  # the lifespan is not run: no Kafka or PostgreSQL is needed
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        me = await client.get("/whoami", headers=bearer("operator"))
        anonymous = await client.get("/whoami")
        health = await client.get("/healthz")
        metrics = await client.get("/metrics")

    assert me.status_code == 200, me.text
    assert me.json() == {"user": "otto", "groups": [], "roles": ["operator@secops"]}
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (health.status_code, metrics.status_code) == (200, 200)


def test_baton_whoami_prints_the_identity_and_explains_a_bad_token() -> None:
    app = FastAPI()
    app.include_router(identity_router(Gatekeeper(authenticator_of(AUTH))))
    served = ServedApp(app, "whoami-under-test").start()
    try:
        runner = CliRunner()
        url = {"BATON_AUDIT_URL": served.url}
        mine = runner.invoke(cli, ["whoami"], env={**url, "BATON_TOKEN": "tok-approver"})
        wrong = runner.invoke(cli, ["whoami"], env={**url, "BATON_TOKEN": "tok-mallory"})
        none = runner.invoke(cli, ["whoami"], env={**url, "BATON_TOKEN": ""})
    finally:
        served.stop()

    assert mine.exit_code == 0, mine.output
    assert mine.output.splitlines() == [
        "user:   april",
        "groups: secops-oncall",
        "roles:  approver@secops",
    ]
    assert wrong.exit_code == 1
    assert "not authenticated (HTTP 401): invalid bearer token: unknown token" in wrong.output
    assert none.exit_code == 1
    assert "set BATON_TOKEN" in none.output
