"""The `baton` command's behaviour that needs no running service."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from baton_cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_validate_accepts_the_examples() -> None:
    files = sorted(str(p) for p in (ROOT / "examples/stories").glob("*.yaml"))
    result = CliRunner().invoke(app, ["stories", "validate", *files])
    assert result.exit_code == 0, result.output
    assert "hello-approval version 1 is valid" in result.output


def test_validate_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: 1\ntrigger: {webhook: {path: p}}\nsteps:\n  a: {action: ftp}\n")
    result = CliRunner().invoke(app, ["stories", "validate", str(bad)])
    assert result.exit_code == 1
    assert "steps.a.action" in result.output


def test_deciding_without_a_token_says_how_to_get_one() -> None:
    result = CliRunner().invoke(app, ["approvals", "approve", "g1"], env={"BATON_TOKEN": ""})
    assert result.exit_code == 1
    assert "set BATON_TOKEN" in result.output


def test_unreachable_service_is_a_message_not_a_traceback() -> None:
    result = CliRunner().invoke(
        app, ["runs", "show", "r1"], env={"BATON_AUDIT_URL": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9/runs/r1" in result.output
