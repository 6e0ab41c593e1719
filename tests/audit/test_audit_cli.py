"""`baton audit` and `baton runs state` against the audit service on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from roles_kit import ADMIN, AUTH
from typer.testing import CliRunner, Result

from baton_audit.export import CSV_COLUMNS
from baton_audit.settings import AuditSettings
from baton_cli.audit_log import read_run_logs
from baton_cli.main import app
from baton_common.envelope import Envelope
from baton_common.hashing import find_break
from baton_common.kafka import OutboundRecord
from baton_common.state import replay

from . import live
from .fakes import STORY_YAML, T0, approved_run, story_records, triage_run
from .test_chain_breaks import deleted, edited, inserted_forgery, reordered

pytestmark = pytest.mark.integration

RUNS = 5


@dataclass
class Stack:
    settings: AuditSettings
    served: live.Served
    logs: dict[str, list[Envelope]]
    bootstrap: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "BATON_KAFKA_BOOTSTRAP": self.bootstrap,
            "BATON_AUDIT_URL": self.served.url,
            "BATON_TOPICS__RUNS": self.settings.topics.runs,
            "BATON_TOPICS__STORIES": self.settings.topics.stories,
            "BATON_TOKEN": "tok-admin",
            **extra,
        }

    def cli(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env(**env))

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.served.url}{path}", headers=ADMIN, timeout=30)

    def records(self) -> int:
        return sum(len(log) for log in self.logs.values()) + 2  # two story versions

    def caught_up(self) -> bool:
        positions = self.get("/admin/positions").json()["positions"]
        return sum(sum(p.values()) for p in positions.values()) >= self.records()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, database_url: str) -> Iterator[Stack]:
    ns = live.namespace()
    names = live.topics(ns)
    live.provision(kafka_bootstrap, names)
    logs: dict[str, list[Envelope]] = {}
    for n in range(RUNS):
        start = T0 + timedelta(hours=n)
        logs[f"t{n}"] = triage_run(f"t{n}", start=start)
        logs[f"a{n}"] = approved_run(f"a{n}", start=start + timedelta(minutes=30))
    stories = [
        OutboundRecord(names.stories, r.key, r.value or b"", list(r.headers))
        for r in story_records(3, 4)
    ]
    live.produce(
        kafka_bootstrap,
        stories + [r for log in logs.values() for r in live.run_records(names.runs, log)],
    )
    settings = AuditSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        db_schema=f"test_audit_{ns}",
        group_id=f"audit-{ns}",
        topics=names,
        auth=AUTH,
    )
    served = live.Served(settings).start()
    stack = Stack(settings, served, logs, kafka_bootstrap)
    try:
        live.wait_for(stack.caught_up, what="projection caught up")
        yield stack
    finally:
        stack.served.stop()
        live.drop_schema(database_url, settings.db_schema)


def test_verify_finds_the_chains_intact(stack: Stack) -> None:
    result = stack.cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert f"{4 * RUNS} chains verified: intact" in result.output  # each run: log and store

    since = (T0 + timedelta(hours=RUNS - 1)).isoformat()
    result = stack.cli("audit", "verify", "--since", since, "--no-store")
    assert result.exit_code == 0, result.output
    assert "2 chains verified" in result.output


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        (edited, "edited"),
        (deleted, "deleted"),
        (reordered, "reordered"),
        (inserted_forgery, "inserted"),
    ],
)
def test_verify_catches_tampering_in_a_copied_log(
    stack: Stack, tamper: Callable[[list[Envelope]], list[Envelope]], kind: str
) -> None:
    read = asyncio.run(read_run_logs(stack.bootstrap, stack.settings.topics.runs, run_id="t1"))
    original = read.runs["t1"]
    assert original == stack.logs["t1"]
    copy = f"{stack.settings.topics.runs}.copy-{kind}"
    live.create_topic(stack.bootstrap, copy)
    live.produce(stack.bootstrap, live.run_records(copy, tamper(list(original))))

    result = stack.cli("audit", "verify", "--run", "t1", "--no-store", BATON_TOPICS__RUNS=copy)

    assert result.exit_code == 1, result.output
    assert f"log: run t1: {kind} at position" in result.output


def _checksums(output: str) -> tuple[str, str]:
    lines = {
        line.split(":")[0]: line.split()[2] for line in output.splitlines() if "checksum" in line
    }
    return lines["checksum before"], lines["checksum after"]


def test_rebuild_reproduces_the_store_and_repairs_a_tampered_one(stack: Stack) -> None:
    pristine = stack.get("/admin/checksum").json()["checksum"]

    result = stack.cli("audit", "rebuild")
    assert result.exit_code == 0, result.output
    assert _checksums(result.output) == (pristine, pristine)
    assert "projecting" in result.output

    live.sql(
        stack.settings.database_url,
        stack.settings.db_schema,
        "delete from events where run_id = 'a2' and seq = 6",
    )
    result = stack.cli("audit", "verify", "--run", "a2")
    assert result.exit_code == 1
    assert "store: run a2: deleted: the store lacks seq 6..6" in result.output

    result = stack.cli("audit", "rebuild")
    assert result.exit_code == 0, result.output
    before, after = _checksums(result.output)
    assert (before != pristine, after) == (True, pristine)
    assert stack.cli("audit", "verify", "--run", "a2").exit_code == 0


def test_an_interrupted_rebuild_resumes(stack: Stack) -> None:
    pristine = stack.get("/admin/checksum").json()["checksum"]

    rebuild = httpx.post(f"{stack.served.url}/admin/rebuild", headers=ADMIN, timeout=30)
    assert rebuild.status_code == 202
    stack.served.stop()  # interrupted: wherever the projection stood is what was committed
    stack.served = live.Served(stack.settings).start()

    result = stack.cli("audit", "rebuild", "--resume")
    assert result.exit_code == 0, result.output
    assert "checksum before" not in result.output
    assert f"checksum after:  {pristine}" in result.output


def test_time_travel_replays_the_run_to_a_seq_or_a_time(stack: Stack) -> None:
    log = stack.logs["t1"]

    def state_at(at: str) -> dict[str, object]:
        result = stack.cli("runs", "state", "t1", "--at", at)
        assert result.exit_code == 0, result.output
        first, _, rest = result.output.partition("\n")
        assert first.startswith("# run t1 after")
        loaded = json.loads(rest)
        assert isinstance(loaded, dict)
        return loaded

    at_three = state_at("3")
    expected = replay(log[:3])
    assert expected is not None
    assert at_three == expected.model_dump(mode="json")
    assert at_three["steps"] == {
        "lookup": {
            "status": "pending",
            "attempt": 1,
            "attempt_id": "t1-lookup-1",
            "gate_id": None,
            "output": None,
            "error": "HTTP 503",
            "decided_by": None,
            "items": None,
            "approvers": None,
            "votes": [],
            "escalated": False,
            "child_run_id": None,
        }
    }
    at_time = state_at(log[4].time.isoformat())
    assert at_time["seq"] == 5
    assert at_time["steps"]["lookup"]["status"] == "succeeded"  # type: ignore[index]

    bad = stack.cli("runs", "state", "t1", "--at", "yesterday")
    assert bad.exit_code == 1
    assert "--at yesterday" in bad.output


def test_exports_read_back(stack: Stack, tmp_path: Path) -> None:
    total = sum(len(log) for log in stack.logs.values())

    result = stack.cli("audit", "export", "--format", "csv", "-o", str(tmp_path / "all.csv"))
    assert result.exit_code == 0, result.output
    with (tmp_path / "all.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    assert len(rows) == total
    t1 = [r for r in rows if r["run_id"] == "t1"]
    assert [int(r["seq"]) for r in t1] == list(range(1, 11))
    assert json.loads(t1[2]["data"])["error_type"] == "http.503"

    since, until = (T0 + timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=2)).isoformat()
    result = stack.cli(
        "audit", "export", "--since", since, "--until", until, "-o", str(tmp_path / "r.jsonl")
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    exported = [Envelope.model_validate_json(line) for line in lines]
    assert {e.subject for e in exported} == {"t1", "a1"}
    assert find_break([e for e in exported if e.subject == "t1"]) is None

    result = stack.cli(
        "audit", "export", "--format", "evidence", "--run", "t1", "-o", str(tmp_path / "t1.zip")
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "t1.zip") as bundle:
        names = sorted(bundle.namelist())
        assert names == [
            f"t1/{n}"
            for n in (
                "ai_interactions.json",
                "approvals.json",
                "attempts.json",
                "chain.json",
                "manifest.json",
                "run.json",
                "story.yaml",
                "timeline.jsonl",
            )
        ]
        assert bundle.read("t1/story.yaml").decode() == STORY_YAML.format(version=4)
        chain = json.loads(bundle.read("t1/chain.json"))
        assert (chain["intact"], chain["head"]) == (True, stack.logs["t1"][-1].hash)
        assert all(link["links"] for link in chain["links"])
        [gate] = json.loads(bundle.read("t1/approvals.json"))
        assert gate["approver"] == "bob"
        [ai] = json.loads(bundle.read("t1/ai_interactions.json"))
        assert ai["model"] == "small-model"
        timeline = io.StringIO(bundle.read("t1/timeline.jsonl").decode())
        assert [Envelope.model_validate_json(line) for line in timeline] == stack.logs["t1"]

    missing = stack.cli("audit", "export", "--format", "evidence", "-o", str(tmp_path / "x"))
    assert missing.exit_code == 1
    assert "give --run" in missing.output


def test_freshness_is_measured_from_append_to_visibility(stack: Stack) -> None:
    metrics = stack.get("/metrics").text
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("baton_audit_freshness_seconds_count")
    )
    assert count >= stack.records()
    assert 'baton_audit_freshness_seconds_bucket{le="1.0"}' in metrics
