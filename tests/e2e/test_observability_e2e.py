"""Observability end to end: the five services as processes, tracing to a local OTLP receiver.

One approved run and one denied run, then: every service's ``/metrics`` holds the
documented series with the values that workload implies, no series is labelled by a
run, and the approved run is one trace across ingest, scheduler, executor, approvals and
audit with every span's parent in it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_http import LocalHttpServer
from observability_assets import family, referenced_families
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from platform_kit import FakeHttp, Platform, build_platform, topic_env
from prometheus_client.parser import text_string_to_metric_families

from baton_common import ids
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"Authorization": "Bearer tok-alice"}
STORY = "hello-approval"
RUN_LABELS = {"run_id", "attempt_id", "gate_id", "command_id", "event_id", "ingest_id", "trace_id"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]


class OtlpReceiver(LocalHttpServer):
    """An OTLP/HTTP trace receiver on 127.0.0.1: protobuf ``ExportTraceServiceRequest``."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                outer.add(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.serve(Handler)

    @property
    def url(self) -> str:
        return self.root

    def add(self, request: ExportTraceServiceRequest) -> None:
        found: list[Span] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    found.append(
                        Span(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def traced(
    kafka_bootstrap: str,
    database_url: str,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    """A platform of its own whose services export spans to ``receiver``."""
    from baton_cli.kafka_ops import publish_stories

    platform = build_platform(kafka_bootstrap, database_url, tmp_path_factory.mktemp("traced"))
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    for service in platform.services.values():
        service.env.update(otel)
    fields = {
        k.removeprefix("BATON_TOPICS__").lower(): v
        for k, v in topic_env(platform.namespace).items()
    }
    topics = TopicSettings.model_validate(fields)
    asyncio.run(provision_topics(kafka_bootstrap, topics))
    text = (ROOT / "examples/stories/hello-approval.yaml").read_text()
    asyncio.run(publish_stories(kafka_bootstrap, topics, [(parse_story(text), text)]))
    try:
        for service in platform.services.values():
            service.start()
        for service in platform.services.values():
            service.wait_ready()
        yield platform
    finally:
        platform.stop()
        for service in platform.services.values():
            print(f"--- {service.name} log tail ---\n{service.tail(15)}")


@pytest.fixture(scope="module")
def workload(traced: Platform) -> Iterator[dict[str, str]]:
    """One approved and one denied run, both finished; a refused webhook."""
    with FakeHttp() as fake:
        approved = _post(traced, fake, "approve me")
        denied = _post(traced, fake, "deny me")
        refused = httpx.post(
            f"{traced.url('ingest')}/webhooks/{'hello'}", content=b"x=1", timeout=30
        )
        assert refused.status_code == 415
        asyncio.run(_decide(traced, approved, "approve", None))
        asyncio.run(_decide(traced, denied, "deny", "not today"))
        asyncio.run(_finished(traced, approved, "succeeded"))
        asyncio.run(_finished(traced, denied, "failed"))
        yield {"approved": approved, "denied": denied}


def _post(platform: Platform, fake: FakeHttp, message: str) -> str:
    body = {"message": message, "lookup_url": f"{fake.url}/lookup", "notify_url": f"{fake.url}/n"}
    response = httpx.post(f"{platform.url('ingest')}/webhooks/hello", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return ids.run_id_for(STORY, f"ingest:{response.json()['id']}")


async def _decide(platform: Platform, run_id: str, decision: str, comment: str | None) -> None:
    async def gate() -> str | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{platform.url('approvals')}/approvals", params={"state": "pending"}, headers=ALICE
            )
        found = [g["gate_id"] for g in response.json()["items"] if g["run_id"] == run_id]
        return found[0] if found else None

    gate_id = await eventually(gate, within=60, what=f"a pending gate for {run_id}")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{platform.url('approvals')}/approvals/{gate_id}/decision",
            json={"decision": decision, "comment": comment},
            headers=ALICE,
        )
    assert response.status_code == 202, response.text


async def _finished(platform: Platform, run_id: str, status: str) -> None:
    async def probe() -> bool:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{platform.url('audit')}/runs/{run_id}", headers=ALICE)
        return response.status_code == 200 and response.json()["run"]["status"] == status

    await eventually(probe, within=60, what=f"run {run_id} {status} in audit")


def scrape(platform: Platform, service: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a service's ``/metrics``: (name, labels) → value."""
    text = httpx.get(f"{platform.url(service)}/metrics", timeout=10).text
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def series(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str
) -> list[dict[str, str]]:
    return [dict(ls) for (n, ls) in samples if n == name]


def test_every_service_reports_the_workload_in_its_metrics(
    traced: Platform, workload: dict[str, str]
) -> None:
    ingest = scrape(traced, "ingest")
    assert total(ingest, "baton_ingest_webhooks_accepted_total") == 2
    assert (
        total(ingest, "baton_ingest_webhooks_rejected_total", reason="unsupported_media_type") == 1
    )
    assert total(ingest, "baton_ingest_routed_total", story=STORY) == 2
    # one observation per produced batch: the two events may share one, and so may their
    # StartRuns, but each topic was produced to and acknowledged
    produced = {
        dict(labels)["topic"].rsplit(".", 1)[-1]: value
        for (name, labels), value in ingest.items()
        if name == "baton_kafka_produce_seconds_count"
    }
    assert produced.get("ingest", 0) >= 1
    assert produced.get("commands", 0) >= 1
    assert total(ingest, "process_cpu_seconds_total") > 0

    scheduler = scrape(traced, "scheduler")
    assert total(scheduler, "baton_runs_started_total", story=STORY) == 2
    assert total(scheduler, "baton_runs_finished_total", story=STORY, outcome="succeeded") == 1
    assert total(scheduler, "baton_runs_finished_total", story=STORY, outcome="failed") == 1
    assert total(scheduler, "baton_run_duration_seconds_count", story=STORY) == 2
    assert total(scheduler, "baton_step_dispatches_total", story=STORY, action="http") == 3
    assert total(scheduler, "baton_approvals_requested_total", story=STORY) == 2
    assert total(scheduler, "baton_approvals_decided_total", decision="granted") == 1
    assert total(scheduler, "baton_approvals_decided_total", decision="denied") == 1
    # 2 StartRun, 3 CompleteStep, 2 DecideApproval
    assert total(scheduler, "baton_scheduler_command_latency_seconds_count") == 7
    assert total(scheduler, "baton_scheduler_transaction_aborts_total") == 0

    executor = scrape(traced, "executor")
    ok = {"action": "http", "outcome": "succeeded"}
    assert total(executor, "baton_executor_step_attempts_total", **ok) == 3
    assert total(executor, "baton_executor_step_duration_seconds_count", action="http") == 3
    assert total(executor, "baton_kafka_produce_seconds_count") == 3

    approvals = scrape(traced, "approvals")
    assert total(approvals, "baton_approvals_decision_latency_seconds_count") == 2
    assert total(approvals, "baton_approvals_decisions_total", outcome="accepted") == 2

    audit = scrape(traced, "audit")
    # run A: 8 events; run B: started, dispatched, succeeded, requested, denied, failed
    assert total(audit, "baton_audit_freshness_seconds_count") >= 14


async def test_consumer_lag_is_reported_per_partition(
    traced: Platform, workload: dict[str, str]
) -> None:
    consumers = {
        "ingest": "ingest-router",
        "scheduler": "scheduler",
        "executor": "executor",
        "approvals": "approvals",
        "audit": "audit",
    }
    for service, consumer in consumers.items():

        async def lag(service: str = service, consumer: str = consumer) -> list[dict[str, str]]:
            found = await asyncio.to_thread(scrape, traced, service)
            return [
                s for s in series(found, "baton_consumer_lag_records") if s["consumer"] == consumer
            ]

        reported = await eventually(lag, within=30, what=f"{service}'s consumer lag")
        assert all(s["topic"].startswith(traced.namespace) for s in reported)
        assert all(s["partition"].isdigit() for s in reported)


def test_no_metric_is_labelled_by_a_run(traced: Platform, workload: dict[str, str]) -> None:
    for service in traced.services:
        for (name, labels), _ in scrape(traced, service).items():
            named = RUN_LABELS & {k for k, _ in labels}
            assert not named, f"{service}: {name} has run-scoped labels {named}"
            for key, value in labels:
                assert not UUID.search(value), f"{service}: {name}{{{key}={value!r}}} names an id"


async def test_one_webhook_is_one_trace_across_the_five_services(
    traced: Platform, receiver: OtlpReceiver, workload: dict[str, str]
) -> None:
    run_id = workload["approved"]

    def trace_of_run() -> list[Span] | None:
        spans = receiver.snapshot()
        attempts = [
            s
            for s in spans
            if s.name == "baton.executor.attempt" and s.attributes.get("baton.run_id") == run_id
        ]
        if not attempts:
            return None
        trace = [s for s in spans if s.trace_id == attempts[0].trace_id]
        services = {s.service for s in trace}
        audited = [s for s in trace if s.name == "baton.audit.store"]
        # all five services, and audit has stored the run's last event
        if len(services) < 5 or not any(
            s.attributes.get("baton.event") == "baton.run.succeeded.v1" for s in audited
        ):
            return None
        return trace

    trace = await eventually(
        lambda: asyncio.to_thread(trace_of_run), within=60, what="the run's whole trace"
    )
    assert {s.service for s in trace} == {
        "baton-ingest",
        "baton-scheduler",
        "baton-executor",
        "baton-approvals",
        "baton-audit",
    }
    by_id = {s.span_id: s for s in trace}
    (root,) = [s for s in trace if not s.parent_id]
    assert root.name == "baton.ingest.webhook"
    for span in trace:
        assert not span.parent_id or span.parent_id in by_id, f"{span.name}'s parent is missing"
    attempts = [s for s in trace if s.name == "baton.executor.attempt"]
    assert sorted(s.attributes["baton.step"] for s in attempts) == ["lookup", "notify"]
    for attempt in attempts:
        assert by_id[attempt.parent_id].name == "baton.scheduler.decide"
        children = [s for s in trace if s.parent_id == attempt.span_id]
        (http,) = [s for s in children if s.name.startswith("HTTP ")]
        assert http.kind == 3  # SPAN_KIND_CLIENT
        # the result's command continues the trace: its decision is the attempt's child
        assert any(s.name == "baton.scheduler.decide" for s in children)
        assert http.attributes["http.response.status_code"] == 200
    (waited,) = [s for s in trace if s.name == "baton.approvals.wait"]
    assert by_id[waited.parent_id].name == "baton.scheduler.decide"
    assert any(s.parent_id == waited.span_id for s in trace), "the decision continues the trace"
    # the route span hangs off the webhook; outbound paths (which may carry secrets) are not kept
    assert any(s.name == "baton.ingest.route" and s.parent_id == root.span_id for s in trace)
    for span in trace:
        assert not any("/lookup" in str(v) for v in span.attributes.values())
    # the other run is another trace
    other = [
        s for s in receiver.snapshot() if s.attributes.get("baton.run_id") == workload["denied"]
    ]
    assert other
    assert all(s.trace_id != root.trace_id for s in other)

    # logs of the approved run's attempts carry its trace id
    lines = traced.services["executor"].log_path.read_text().splitlines()
    logged = [json.loads(line) for line in lines if run_id in line and line.startswith("{")]
    assert any(entry.get("trace_id") == root.trace_id for entry in logged)


def test_the_dashboard_and_rules_use_only_metrics_the_services_serve(
    traced: Platform, workload: dict[str, str]
) -> None:
    served: set[str] = set()
    for service in traced.services:
        text = httpx.get(f"{traced.url(service)}/metrics", timeout=10).text
        served.update(family(f.name) for f in text_string_to_metric_families(text))
    missing = referenced_families() - served
    assert not missing, f"not in any service's /metrics: {sorted(missing)}"


async def test_baton_top_reads_the_live_services(
    traced: Platform, workload: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from baton_cli.main import app

    env = {f"BATON_{name.upper()}_URL": traced.url(name) for name in traced.services}
    consumers = {"scheduler", "executor", "approvals", "audit", "ingest-router"}

    def frame() -> dict[str, Any] | None:
        result = CliRunner().invoke(app, ["top", "--once", "--json", "--interval", "0.5"], env=env)
        assert result.exit_code == 0, result.output
        shown: dict[str, Any] = json.loads(result.output)
        return shown if consumers <= set(shown["lag"]) else None  # lag is measured every 5 s

    shown = await eventually(
        lambda: asyncio.to_thread(frame), within=30, what="baton top with every consumer's lag"
    )
    assert shown["up"] == dict.fromkeys(traced.services, True)
    # the workload is over: both runs finished, both gates decided, nothing running
    assert (shown["runs_in_flight"], shown["approvals_pending"], shown["steps_running"]) == (
        0,
        0,
        0,
    )
    assert shown["webhooks_per_s"] == 0
    assert shown["step_errors_per_s"] == 0
