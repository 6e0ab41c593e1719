"""`baton events send` and `baton events tail` against a real ingest process and Kafka."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from platform_kit import topic_env
from typer.testing import CliRunner

from baton_cli.main import app

from .kit import new_namespace, prepare, service

pytestmark = pytest.mark.integration

SIGNED = """
id: signed-cli
version: 1
trigger:
  webhook: {path: cli-signed, signature: {secret: CLI_KEY, timestamp_header: X-Timestamp}}
steps:
  call: {action: http, with: {url: "https://x.example/"}}
"""


def test_send_and_tail(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = new_namespace()
    asyncio.run(prepare(kafka_bootstrap, namespace, [SIGNED]))
    ingest = service("ingest", kafka_bootstrap, namespace, tmp_path, {"BATON_SECRET_CLI_KEY": "k1"})
    ingest.start()
    try:
        ingest.wait_ready()
        for name, value in topic_env(namespace).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BATON_KAFKA_BOOTSTRAP", kafka_bootstrap)
        monkeypatch.setenv("BATON_INGEST_URL", ingest.url)
        monkeypatch.setenv("CLI_KEY", "k1")
        runner = CliRunner()
        sign = ["--hmac-secret-env", "CLI_KEY", "--timestamp-header", "X-Timestamp"]

        one = runner.invoke(app, ["events", "send", "cli-signed", *sign], input='{"n": 1}')
        many = runner.invoke(
            app, ["events", "send", "cli-signed", *sign], input='{"n": 2}\n{"n": 3}\n'
        )
        bad = runner.invoke(app, ["events", "send", "cli-signed", *sign], input='{"n": 4}\n{"n"\n')
        unsigned = runner.invoke(app, ["events", "send", "cli-signed"], input='{"n": 5}')
        tail = runner.invoke(app, ["events", "tail", "--from-beginning", "--limit", "3"])
    finally:
        ingest.stop()

    assert one.exit_code == 0, one.output
    assert many.exit_code == 0, many.output
    sent = one.output.split() + many.output.split()
    assert len(sent) == 3
    assert bad.exit_code == 1
    assert "line 2:" in bad.output
    assert "HTTP 422" in bad.output
    assert unsigned.exit_code == 1
    assert "HTTP 401" in unsigned.output
    assert tail.exit_code == 0, tail.output
    lines = [json.loads(line) for line in tail.output.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(sent)
    assert sorted(line["body"]["n"] for line in lines) == [1, 2, 3]
    assert {line["source"] for line in lines} == {"cli-signed"}
