"""Run the five services as real processes against the real Kafka and PostgreSQL.

Each test session gets its own topic names, consumer groups, transactional id and
PostgreSQL schemas, so sessions never see each other's records.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
from local_http import LocalHttpServer

SERVICES = ("ingest", "scheduler", "executor", "approvals", "audit")
TOKENS = {
    "tok-alice": {
        "user": "alice",
        "groups": ["secops-oncall"],
        "roles": ["approver@secops", "operator@secops"],
    },
    "tok-mallory": {"user": "mallory", "groups": ["interns"], "roles": ["approver@interns"]},
    "tok-viewer": {"user": "vera", "roles": ["viewer"]},
    "tok-admin": {"user": "root", "roles": ["admin"]},
}
"""Every service's static tokens (``BATON_AUTH__TOKENS``)."""
VIEWER = {"Authorization": "Bearer tok-viewer"}
"""Headers of a caller who may read runs and the audit history."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def topic_env(namespace: str) -> dict[str, str]:
    """Environment that gives every topic a per-session name."""
    names = {
        "STORIES": "baton.stories",
        "INGEST": "baton.ingest",
        "COMMANDS": "baton.commands",
        "RUNS": "baton.runs",
        "APPROVALS": "baton.tasks.approvals",
        "DLQ": "baton.dlq",
        "SCHEDULES": "baton.schedules",
        "SNAPSHOTS": "baton.snapshots",
        "POLICIES": "baton.policies",
        "TASKS_PREFIX": "baton.tasks.",
    }
    env = {f"BATON_TOPICS__{k}": f"{namespace}.{v}" for k, v in names.items()}
    env["BATON_TOPICS__PARTITIONS"] = "3"
    env["BATON_TOPICS__INGEST_PARTITIONS"] = "2"
    return env


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"baton_{self.name}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready within {within}s: {last}\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Platform:
    namespace: str
    bootstrap: str
    database_url: str
    env: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.services[service].url

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()


def build_platform(bootstrap: str, database_url: str, log_dir: Path) -> Platform:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_KAFKA_BOOTSTRAP": bootstrap,
        "BATON_DATABASE_URL": database_url,
        "BATON_LOG_LEVEL": "INFO",
        "BATON_AUTH__TOKENS": json.dumps(TOKENS),
        **topic_env(namespace),
    }
    platform = Platform(namespace, bootstrap, database_url, base)
    per_service = {
        "ingest": {"BATON_INGEST_ROUTER_GROUP": f"{namespace}-router"},
        "scheduler": {
            "BATON_SCHEDULER_GROUP_ID": f"{namespace}-scheduler",
            "BATON_SCHEDULER_TRANSACTIONAL_ID": f"{namespace}-scheduler-0",
        },
        "executor": {
            "BATON_EXECUTOR_GROUP_ID": f"{namespace}-executor",
            # the SSRF guard refuses loopback: the local fakes are allowed explicitly
            "BATON_EXECUTOR_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
        },
        "approvals": {
            "BATON_APPROVALS_GROUP_ID": f"{namespace}-approvals",
            "BATON_APPROVALS_SCHEMA": f"{namespace}_approvals",
        },
        "audit": {
            "BATON_AUDIT_GROUP_ID": f"{namespace}-audit",
            "BATON_AUDIT_SCHEMA": f"{namespace}_audit",
        },
    }
    for name in SERVICES:
        port = free_port()
        env = {**base, **per_service[name], f"BATON_{name.upper()}_HTTP_PORT": str(port)}
        platform.services[name] = Service(name, port, env, log_dir / f"{name}.log")
    return platform


@dataclass
class Recorded:
    method: str
    path: str
    headers: httpx.Headers  # header names are case-insensitive
    body: bytes


class FakeHttp(LocalHttpServer):
    """A real HTTP server on 127.0.0.1 that records every call and answers 200 JSON."""

    def __init__(self) -> None:
        self.calls: list[Recorded] = []
        self.status_for: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.calls.append(
                    Recorded(self.command, self.path, httpx.Headers(self.headers.items()), body)
                )
                status = outer.status_for.get(self.path, 200)
                payload = json.dumps({"ok": status < 400, "path": self.path}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.serve(Handler)

    @property
    def url(self) -> str:
        return self.root

    def calls_to(self, path: str) -> list[Recorded]:
        return [c for c in self.calls if c.path == path]


def iter_lines(path: Path) -> Iterator[str]:
    yield from path.read_text().splitlines()
