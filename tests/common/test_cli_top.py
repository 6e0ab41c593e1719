"""`baton top`: figures from two scrapes of the services' metrics, and the command itself.

The metric text comes from the services' own metric classes (ingest, executor) and from
counters named as the scheduler and the Kafka helpers name theirs, each in a private
registry, served by local HTTP servers as the services serve ``/metrics``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from typer.testing import CliRunner

from baton_cli.main import app
from baton_cli.top_figures import Scrape, figures, parse_metrics
from baton_executor.metrics import ExecutorMetrics
from baton_ingest.metrics import IngestMetrics


class SchedulerCounters:
    """The scheduler's series `baton top` reads, as the scheduler names them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "baton_scheduler_commands_total", "c", ["type", "outcome"], registry=registry
        )
        self.started = Counter("baton_runs_started_total", "s", ["story"], registry=registry)
        self.finished = Counter(
            "baton_runs_finished_total", "f", ["story", "outcome"], registry=registry
        )
        self.requested = Counter(
            "baton_approvals_requested_total", "r", ["story"], registry=registry
        )
        self.decided = Counter(
            "baton_approvals_decided_total", "d", ["story", "decision"], registry=registry
        )
        self.dlq = Counter("baton_dlq_records", "q", ["consumer", "topic"], registry=registry)
        self.lag = Gauge(
            "baton_consumer_lag_records", "l", ["consumer", "topic", "partition"], registry=registry
        )


class Services:
    """Registries of three services; approvals and audit are down."""

    def __init__(self) -> None:
        names = ("ingest", "scheduler", "executor")
        self.registries = {name: CollectorRegistry() for name in names}
        self.ingest = IngestMetrics(self.registries["ingest"])
        self.scheduler = SchedulerCounters(self.registries["scheduler"])
        self.executor = ExecutorMetrics(self.registries["executor"])

    def text(self, service: str) -> str:
        return generate_latest(self.registries[service]).decode()

    def scrape(self, at: float) -> Scrape:
        return Scrape(
            at=at,
            services={
                **{s: parse_metrics(self.text(s)) for s in self.registries},
                "approvals": None,
                "audit": None,
            },
        )


def workload(services: Services, n: int) -> None:
    """``n`` webhooks, each a run of two steps; one run in ten fails, one in five waits."""
    services.ingest.accepted.inc(n)
    services.ingest.rejected.labels(reason="bad_signature").inc(n // 10)
    services.ingest.routed.labels(story="s").inc(n)
    services.scheduler.commands.labels(type="StartRun", outcome="accepted").inc(n)
    services.scheduler.commands.labels(type="CompleteStep", outcome="rejected").inc(n // 10)
    services.scheduler.started.labels(story="s").inc(n)
    services.scheduler.finished.labels(story="s", outcome="succeeded").inc(n - n // 10 - n // 5)
    services.scheduler.finished.labels(story="s", outcome="failed").inc(n // 10)
    services.scheduler.requested.labels(story="s").inc(n // 5)
    services.executor.attempts.labels(action="http", outcome="succeeded").inc(2 * n - n // 10)
    services.executor.attempts.labels(action="http", outcome="permanent").inc(n // 10)


def test_rates_are_counter_deltas_over_the_time_between_scrapes() -> None:
    services = Services()
    workload(services, 10)
    before = services.scrape(at=100.0)
    workload(services, 40)
    services.executor.in_flight.set(3)
    services.scheduler.dlq.labels(consumer="scheduler", topic="baton.commands").inc(2)
    lag = services.scheduler.lag
    lag.labels(consumer="scheduler", topic="baton.commands", partition="0").set(5)
    lag.labels(consumer="scheduler", topic="baton.commands", partition="1").set(7)
    frame = figures(before, services.scrape(at=104.0))

    assert frame.interval == 4.0
    assert frame.webhooks_per_s == 10.0  # 40 in 4 s
    assert frame.webhooks_rejected_per_s == 1.0
    assert frame.routed_per_s == 10.0
    assert frame.commands_per_s == 11.0  # 40 StartRun + 4 rejected CompleteStep
    assert frame.commands_rejected_per_s == 1.0
    assert frame.runs_started_per_s == 10.0
    assert frame.runs_finished_per_s == 8.0  # 32 of 40 finished
    assert frame.runs_failed_per_s == 1.0
    assert frame.runs_in_flight == 10  # 50 started, 40 finished: the ones waiting on approvals
    assert frame.approvals_pending == 10  # 10 requested, none decided
    assert frame.step_attempts_per_s == 20.0
    assert frame.step_errors_per_s == 1.0
    assert frame.steps_running == 3
    assert frame.dlq_records == 2
    assert frame.dlq_per_s == 0.5
    assert frame.lag == {"scheduler": 12}
    assert frame.up == {
        "ingest": True,
        "scheduler": True,
        "executor": True,
        "approvals": False,
        "audit": False,
    }


def test_a_restarted_service_counts_from_zero_and_a_first_frame_has_no_rates() -> None:
    services = Services()
    workload(services, 100)
    before = services.scrape(at=0.0)
    restarted = Services()
    workload(restarted, 20)
    frame = figures(before, restarted.scrape(at=2.0))
    assert frame.webhooks_per_s == 10.0  # 20 since the restart, not -80
    first = figures(None, before)
    assert first.webhooks_per_s is None
    assert first.runs_in_flight == 20  # totals need no previous scrape


def test_a_down_service_has_no_figures() -> None:
    services = Services()
    scrape = services.scrape(at=1.0)
    down = Scrape(at=2.0, services={**scrape.services, "executor": None})
    frame = figures(scrape, down)
    assert frame.up["executor"] is False
    assert frame.step_attempts_per_s is None
    assert frame.steps_running is None
    assert frame.runs_in_flight == 0


class MetricsServer:
    """``/metrics`` on 127.0.0.1; ``before_each`` runs before every scrape is answered."""

    def __init__(self, text: Callable[[], str], before_each: Callable[[], None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                before_each()
                body = text().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served() -> Iterator[tuple[Services, dict[str, str]]]:
    services = Services()
    # `top` scrapes the services concurrently; the scheduler's n-th scrape is answered only
    # after ingest's n-th one ran its workload, so what each scrape sees is fixed
    scrapes = {"ingest": 0, "scheduler": 0}
    turn = threading.Condition()

    def ingest_scraped() -> None:
        workload(services, 10)
        with turn:
            scrapes["ingest"] += 1
            turn.notify_all()

    def scheduler_scraped() -> None:
        with turn:
            scrapes["scheduler"] += 1
            turn.wait_for(lambda: scrapes["ingest"] >= scrapes["scheduler"], timeout=10)

    servers = {
        # every scrape of ingest sees ten more webhooks: the second scrape's rate is 10/interval
        "ingest": MetricsServer(lambda: services.text("ingest"), ingest_scraped),
        "scheduler": MetricsServer(lambda: services.text("scheduler"), scheduler_scraped),
        "executor": MetricsServer(lambda: services.text("executor"), lambda: None),
        # approvals answers, but not with metrics
        "approvals": MetricsServer(lambda: "<html>not metrics {{</html>", lambda: None),
    }
    env = {f"BATON_{name.upper()}_URL": server.url for name, server in servers.items()}
    env["BATON_AUDIT_URL"] = "http://127.0.0.1:9"  # nothing listens: down
    try:
        yield services, env
    finally:
        for server in servers.values():
            server.close()


def test_top_once_prints_the_frame_of_two_scrapes(
    served: tuple[Services, dict[str, str]],
) -> None:
    _, env = served
    result = CliRunner().invoke(app, ["top", "--once", "--json", "--interval", "0.2"], env=env)
    assert result.exit_code == 0, result.output
    frame = json.loads(result.output)
    assert frame["up"] == {
        "ingest": True,
        "scheduler": True,
        "executor": True,
        "approvals": False,
        "audit": False,
    }
    assert frame["webhooks_per_s"] * frame["interval"] == pytest.approx(10)
    assert frame["runs_in_flight"] == 4  # two scrapes, each after ten runs, two of them waiting


def test_top_once_draws_down_services_as_down(served: tuple[Services, dict[str, str]]) -> None:
    services, env = served
    services.executor.in_flight.set(4)
    result = CliRunner().invoke(app, ["top", "--once", "--interval", "0.1"], env=env)
    assert result.exit_code == 0, result.output
    assert "audit down" in result.output
    assert "approvals down" in result.output
    assert "ingest up" in result.output
    (running,) = [line for line in result.output.splitlines() if "running" in line]
    assert running.split()[-1] == "4"
