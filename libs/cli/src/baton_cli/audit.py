"""`baton audit`: verify hash chains, rebuild the audit store, export history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from aiokafka.errors import KafkaError

from baton_cli.audit_log import projected_ends, read_run_logs
from baton_cli.audit_policy import policy_decisions
from baton_cli.common import call, fail, load_settings
from baton_cli.http import auth_headers, explain
from baton_common.envelope import Envelope
from baton_common.hashing import ChainBreak, find_break

T = TypeVar("T")


def _kafka(bootstrap: str, work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except KafkaError as exc:
        raise fail(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


audit_app = typer.Typer(help="Audit: verify, rebuild, export.", no_args_is_help=True)
audit_app.command("policy-decisions")(policy_decisions)

Since = Annotated[
    datetime | None, typer.Option(help="runs with an event at or after this time (ISO 8601)")
]


def _store_runs(audit_url: str, since: datetime | None) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        body = call("GET", f"{audit_url}/runs", params=params)
        ids += [
            r["run_id"]
            for r in body["items"]
            if since is None or datetime.fromisoformat(r["updated_at"]) >= since
        ]
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def _store_events(audit_url: str, run_id: str) -> list[Envelope] | None:
    try:
        response = httpx.get(
            f"{audit_url}/runs/{run_id}/events",
            headers=auth_headers(load_settings().token),
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {audit_url}: {exc}") from exc
    if response.status_code == 404:
        return None
    if response.is_error:
        raise fail(explain("GET", f"{audit_url}/runs/{run_id}/events", response))
    return [Envelope.model_validate(e) for e in response.json()["items"]]


def _compare(log: list[Envelope], store: list[Envelope]) -> str | None:
    """Where two intact copies of a run's chain part, if they do."""
    for position, (a, b) in enumerate(zip(log, store, strict=False)):
        if a.hash != b.hash:
            return f"store and log differ at position {position} (seq {a.seq})"
    if len(store) < len(log):
        return f"deleted: the store lacks seq {len(store) + 1}..{len(log)} of the log"
    if len(store) > len(log):
        return f"inserted: the store has {len(store) - len(log)} events the log lacks"
    return None


@audit_app.command("verify")
def audit_verify(
    run: Annotated[str | None, typer.Option("--run", help="one run id")] = None,
    since: Since = None,
    log: Annotated[bool, typer.Option(help="check the chains in baton.runs (Kafka)")] = True,
    store: Annotated[bool, typer.Option(help="check the chains in the audit store")] = True,
) -> None:
    """Recompute each run's hash chain from the log and from the audit store.

    Reports the first break of each broken run (edited, deleted, reordered or inserted
    event) and exits 1 if any run is broken.
    """
    config = load_settings()
    problems: list[str] = []
    checked = 0
    log_runs: dict[str, list[Envelope]] = {}
    if log:
        read = _kafka(
            config.kafka_bootstrap,
            read_run_logs(config.kafka_bootstrap, config.topics.runs, run_id=run, since=since),
        )
        log_runs = read.runs
        problems += [f"log: unreadable record {u}" for u in read.unreadable]
        for run_id, envelopes in sorted(log_runs.items()):
            checked += 1
            found: ChainBreak | None = find_break(envelopes)
            if found is not None:
                problems.append(f"log: run {run_id}: {found}")
    if store:
        ids = [run] if run else sorted(set(_store_runs(config.audit_url, since)) | set(log_runs))
        for run_id in ids:
            envelopes_or_none = _store_events(config.audit_url, run_id)
            if envelopes_or_none is None:
                if run_id in log_runs:
                    problems.append(f"store: run {run_id}: deleted: in the log, not in the store")
                continue
            checked += 1
            found = find_break(envelopes_or_none)
            if found is not None:
                problems.append(f"store: run {run_id}: {found}")
            elif run_id in log_runs and find_break(log_runs[run_id]) is None:
                parted = _compare(log_runs[run_id], envelopes_or_none)
                if parted is not None:
                    problems.append(f"store: run {run_id}: {parted}")
    for problem in problems:
        typer.secho(problem, fg=typer.colors.RED)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{checked} chains verified: intact")


def _progress(config_audit: str, ends: dict[str, dict[int, int]]) -> int:
    stored = call("GET", f"{config_audit}/admin/positions")["positions"]
    done = 0
    for topic, parts in ends.items():
        for partition, end in parts.items():
            done += min(end, int(stored.get(topic, {}).get(str(partition), 0)))
    return done


@audit_app.command("rebuild")
def audit_rebuild(
    resume: Annotated[
        bool, typer.Option(help="do not drop again: follow a rebuild that was interrupted")
    ] = False,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 3600,
) -> None:
    """Drop the audit store and re-project it from offset 0; print checksums before and after.

    The two checksums are equal when the log did not grow meanwhile. Interrupted (by
    Ctrl-C or a restart of the audit service), the rebuild resumes from where it stood:
    run again with --resume.
    """
    config = load_settings()
    if not resume:
        before = call("GET", f"{config.audit_url}/admin/checksum")
        typer.echo(f"checksum before: {before['checksum']}  rows {before['rows']}")
        call("POST", f"{config.audit_url}/admin/rebuild")
        typer.echo("audit store dropped; re-projecting from offset 0")
    else:
        call("GET", f"{config.audit_url}/admin/positions")  # is the service there at all?
    topics = [config.topics.runs, config.topics.stories]
    ends = _kafka(config.kafka_bootstrap, projected_ends(config.kafka_bootstrap, topics))
    total = sum(sum(parts.values()) for parts in ends.values())
    deadline = time.monotonic() + timeout
    with typer.progressbar(length=total, label="projecting") as bar:
        shown = 0
        while True:
            done = _progress(config.audit_url, ends)
            bar.update(done - shown)
            shown = done
            if done >= total:
                break
            if time.monotonic() > deadline:
                raise fail(f"rebuild not done after {timeout:.0f}s ({done}/{total} records)")
            time.sleep(0.5)
    after = call("GET", f"{config.audit_url}/admin/checksum")
    typer.echo(f"checksum after:  {after['checksum']}  rows {after['rows']}")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    run: Annotated[str | None, typer.Option("--run", help="one run id")] = None,
    since: Annotated[datetime | None, typer.Option(help="runs started at or after")] = None,
    until: Annotated[datetime | None, typer.Option(help="runs started before")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or evidence (a zip)")] = "jsonl",
) -> None:
    """Export a run or the runs of a time range (streamed), or a run's evidence bundle."""
    config = load_settings()
    params: dict[str, str] = {}
    if fmt == "evidence":
        if run is None:
            raise fail("an evidence bundle is per run: give --run")
        url = f"{config.audit_url}/runs/{run}/evidence"
    elif fmt in ("jsonl", "csv"):
        url = f"{config.audit_url}/export/events"
        params["format"] = fmt
        if run is not None:
            params["run_id"] = run
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
    else:
        raise fail(f"unknown format {fmt!r}: jsonl, csv or evidence")
    written = 0
    try:
        headers = auth_headers(config.token)
        with httpx.stream("GET", url, params=params, headers=headers, timeout=60) as response:
            if response.is_error:
                response.read()
                raise fail(explain("GET", url, response))
            with output.open("wb") as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from exc
    typer.echo(f"wrote {written} bytes to {output}")
