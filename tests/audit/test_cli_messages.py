"""`baton audit` and `baton runs state` answer bad input with a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from baton_cli.main import app
from baton_cli.runs import state_at

from .fakes import triage_run

NOWHERE = {"BATON_AUDIT_URL": "http://127.0.0.1:9"}


def test_an_unknown_export_format_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["audit", "export", "--format", "xml", "-o", str(tmp_path / "x")], env=NOWHERE
    )
    assert result.exit_code == 1
    assert "unknown format 'xml'" in result.output


def test_an_unreachable_audit_service_is_a_message(tmp_path: Path) -> None:
    for args in (
        ["audit", "verify", "--no-log"],
        ["audit", "rebuild", "--resume"],
        ["audit", "export", "-o", str(tmp_path / "x")],
        ["runs", "state", "r1"],
    ):
        result = CliRunner().invoke(app, args, env=NOWHERE)
        assert result.exit_code == 1, args
        assert "cannot reach http://127.0.0.1:9" in result.output, args


def test_state_at_folds_up_to_a_seq_or_a_time() -> None:
    log = triage_run("t1")
    state, applied = state_at(log, "4")
    assert (applied, state is not None and state.steps["lookup"].status.value) == (
        4,
        "dispatched",
    )
    state, applied = state_at(log, log[6].time.isoformat())
    assert applied == 7
    assert state is not None
    assert state.steps["verdict"].status.value == "succeeded"
    state, applied = state_at(log, None)
    assert (applied, state is not None and state.status.value) == (10, "succeeded")
    before, applied = state_at(log, "0")
    assert (before, applied) == (None, 0)


def test_an_unreachable_kafka_is_a_message() -> None:
    env = {**NOWHERE, "BATON_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    result = CliRunner().invoke(app, ["audit", "verify", "--no-store"], env=env)
    assert result.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in result.output
