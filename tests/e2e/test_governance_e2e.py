"""Governance end to end on the real Kafka and PostgreSQL (ADR 0910).

- A dispatch the scheduler can judge (the host is in the rendered input) and one only the
  executor can judge (the URL is a secret) are both denied: a ``PolicyDenied`` event and
  a failed step with the reason, never retried, and the decisions are an audit query.
- Change control: a draft version is not routed until someone other than its author
  approved it; the approvals are in the audit store.
- Secrets hygiene: a story using a secret runs; the value, and its base64 and URL-encoded
  forms, are in no Kafka record of any topic, no audit or approvals row, no service log
  line and not in the exported evidence bundle.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from outside_fakes import FakeApi, Seen
from platform_kit import VIEWER, Platform, Service, free_port
from typer.testing import CliRunner

from baton_cli.governance_ops import publish_approval, publish_policies
from baton_cli.kafka_ops import publish_stories
from baton_cli.main import app
from baton_common import ids
from baton_common.kafka import make_consumer
from baton_common.policy import parse_policy
from baton_common.records import StoryApproved
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics

pytestmark = pytest.mark.integration

TOKEN = "gov-S3cret/+token=42"
QUEUE = "gov"

SECRET_STORY = """
id: gov-secret
version: 1
owner: secops
trigger: {webhook: {path: gov-secret}}
steps:
  call:
    action: http
    queue: gov
    with:
      method: POST
      url: "{{ event.api }}/echo"
      headers: {Authorization: "Bearer {{ secrets.GOV_TOKEN }}"}
      json: {note: "token {{ secrets.GOV_TOKEN }}"}
  reject:
    needs: [call]
    action: http
    queue: gov
    with:
      method: POST
      url: "{{ event.api }}/reject"
      headers: {Authorization: "Bearer {{ secrets.GOV_TOKEN }}"}
"""
EXFIL_STORY = """
id: gov-exfil
version: 1
owner: secops
trigger: {webhook: {path: gov-exfil}}
steps:
  lookup: {action: http, queue: gov, with: {url: "{{ event.api }}/lookup"}}
  exfil:
    needs: [lookup]
    action: http
    queue: gov
    retry: {max_attempts: 3}
    with: {method: POST, url: "{{ event.target }}", json: {data: "{{ steps.lookup.output.body }}"}}
"""
HOOK_STORY = """
id: gov-hook
version: 1
owner: secops
trigger: {webhook: {path: gov-hook}}
steps:
  post:
    action: http
    queue: gov
    retry: {max_attempts: 3}
    with: {method: POST, url: "{{ secrets.GOV_HOOK_URL }}", json: {n: 1}}
"""


def echo(seen: Seen) -> tuple[int, Any]:
    """A careless API: echoes the credential back, plainly and encoded."""
    auth = seen.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ")
    if seen.path == "/reject":
        return 400, {"error": f"bad token {base64.b64encode(token.encode()).decode()}"}
    return 200, {
        "auth": auth,
        "b64": base64.b64encode(token.encode()).decode(),
        "b64url": base64.urlsafe_b64encode(token.encode()).decode(),
        "basic": "Basic " + base64.b64encode(f"svc:{token}".encode()).decode(),
        "quoted": quote(token, safe=""),
        "got": json.loads(seen.body or b"null"),
    }


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi(echo) as server:
        yield server


@pytest.fixture(scope="module")
def gov(
    platform: Platform,
    topics: TopicSettings,
    api: FakeApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    """A policy for the gov-* stories, the stories, and an executor pool with the secrets."""
    queues = topics.model_copy(update={"task_queues": ["default", QUEUE]})
    asyncio.run(provision_topics(platform.bootstrap, queues))
    host = api.url.removeprefix("http://")
    text = f"""
id: gov-e2e
version: 1
applies_to: {{stories: ["gov-*"]}}
actions:
  http: [{{hosts: ["{host}"], methods: [GET, POST]}}]
"""
    asyncio.run(publish_policies(platform.bootstrap, topics, [(parse_policy(text), text)], "e2e"))
    stories = [(parse_story(t), t) for t in (SECRET_STORY, EXFIL_STORY, HOOK_STORY)]
    asyncio.run(publish_stories(platform.bootstrap, topics, stories))
    port = free_port()
    env = {
        **platform.services["executor"].env,
        "BATON_EXECUTOR_HTTP_PORT": str(port),
        "BATON_EXECUTOR_GROUP_ID": f"{platform.namespace}-executor-gov",
        "BATON_EXECUTOR_QUEUES": json.dumps([QUEUE]),
        "BATON_SECRET_GOV_TOKEN": TOKEN,
        # the policy allows 127.0.0.1:<port>; this names the same service as localhost
        "BATON_SECRET_GOV_HOOK_URL": f"http://localhost:{api.url.rsplit(':', 1)[1]}/hook",
    }
    service = Service("executor", port, env, tmp_path_factory.mktemp("gov-logs") / "gov.log")
    service.start()
    try:
        service.wait_ready(within=90)
        yield service
    finally:
        service.stop()


async def run_to_end(platform: Platform, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a run through the webhook and wait for its audit view once it finished."""

    async def post() -> str | None:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{platform.url('ingest')}/webhooks/{path}", json=body, timeout=30
            )
        if response.status_code == 404:
            return None
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    ingest_id = await eventually(post, within=60, what=f"webhook {path} accepted")
    run_id = ids.run_id_for(path, f"ingest:{ingest_id}")

    async def done() -> dict[str, Any] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{platform.url('audit')}/runs/{run_id}", headers=VIEWER)
        if response.status_code == 404:
            return None
        view: dict[str, Any] = response.json()
        return view if view["run"]["status"] in ("succeeded", "failed") else None

    return await eventually(done, within=90, what=f"run {run_id} finished")


async def judged_run(platform: Platform, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A run the policy judged (the scheduler reads new policies within a second or so;
    a run started before is simply not judged, so try again)."""
    for attempt in range(5):
        view = await run_to_end(platform, path, {**body, "attempt": attempt})
        if any(e["type"].startswith("baton.policy.") for e in view["timeline"]):
            return view
        await asyncio.sleep(1)
    raise AssertionError(f"no run of {path} was judged by policy")


def events(view: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e["data"] for e in view["timeline"] if e["type"] == type_]


async def test_a_host_the_policy_does_not_allow_is_denied_at_dispatch(
    platform: Platform, gov: Service, api: FakeApi
) -> None:
    view = await judged_run(
        platform, "gov-exfil", {"api": api.url, "target": "http://127.0.0.2:9/x"}
    )
    assert view["run"]["status"] == "failed"
    (denied,) = events(view, "baton.policy.denied.v1")
    assert denied["stage"] == "dispatch"
    assert denied["step"] == "exfil"
    assert denied["decision"]["policy_id"] == "gov-e2e"
    assert denied["decision"]["input"]["host"] == "127.0.0.2:9"
    (failed,) = events(view, "baton.step.failed.v1")
    assert failed["step"] == "exfil"
    assert failed["will_retry"] is False
    assert failed["error_type"] == "PolicyDenied"
    assert failed["message"].startswith(
        "denied by policy gov-e2e v1 (actions.http.hosts): host 127.0.0.2:9 is not allowed"
    )
    assert not [e for e in events(view, "baton.step.dispatched.v1") if e["step"] == "exfil"]
    allowed = events(view, "baton.policy.evaluated.v1")
    assert [(e["step"], e["decision"]["rule"]) for e in allowed] == [("lookup", "actions.http")]

    # "what did policy gov-e2e v1 deny?" is an audit query, and a CLI one
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{platform.url('audit')}/policy-decisions",
            params={"policy_id": "gov-e2e", "policy_version": 1, "outcome": "deny"},
            headers=VIEWER,
        )
    assert answer.status_code == 200
    mine = [d for d in answer.json()["items"] if d["run_id"] == view["run"]["run_id"]]
    assert [(d["step"], d["rule"], d["stage"]) for d in mine] == [
        ("exfil", "actions.http.hosts", "dispatch")
    ]
    cli = CliRunner().invoke(
        app,
        ["audit", "policy-decisions", "--policy", "gov-e2e", "--version", "1", "--outcome", "deny"],
        env={"BATON_AUDIT_URL": platform.url("audit"), "BATON_TOKEN": "tok-viewer"},
    )
    assert cli.exit_code == 0, cli.output
    assert f"DENY   gov-e2e v1  gov-exfil {view['run']['run_id']} [exfil]" in cli.output


async def test_a_secret_url_outside_the_policy_is_denied_by_the_executor(
    platform: Platform, gov: Service, api: FakeApi
) -> None:
    view = await judged_run(platform, "gov-hook", {})
    assert view["run"]["status"] == "failed"
    (denied,) = events(view, "baton.policy.denied.v1")
    assert denied["stage"] == "execute"
    assert denied["decision"]["rule"] == "actions.http.hosts"
    failures = events(view, "baton.step.failed.v1")
    assert [(f["step"], f["will_retry"], f["error_kind"]) for f in failures] == [
        ("post", False, "permanent")
    ]
    assert "host localhost:" in failures[0]["message"]
    assert not [s for s in api.requests if s.path == "/hook"]


def secret_forms(value: str) -> list[bytes]:
    raw = value.encode()
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(f"svc:{value}".encode()).decode(),
    }
    return sorted(f.encode() for f in forms)


async def every_record(platform: Platform) -> list[bytes]:
    """Key, value and headers of every record of every topic of this test session."""
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.bootstrap)
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(platform.namespace))
    finally:
        await admin.close()
    consumer = make_consumer(platform.bootstrap, *names, group_id=None, client_id="e2e-dump")
    await consumer.start()
    seen: list[bytes] = []
    try:

        async def drained() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = b"".join(k.encode() + v for k, v in r.headers)
                    seen.append((r.key or b"") + (r.value or b"") + headers)
            assigned = consumer.assignment()
            if len(assigned) == 0:
                return False
            ends = await consumer.end_offsets(list(assigned))
            return all([await consumer.position(tp) >= end for tp, end in ends.items()])

        await eventually(drained, within=60, what="every record read")
    finally:
        await consumer.stop()
    assert len(names) >= 10, names
    return seen


async def every_row(platform: Platform) -> list[str]:
    """Every row of every table of the audit and approvals schemas, as JSON text."""
    conn = await asyncpg.connect(platform.database_url)
    try:
        tables = await conn.fetch(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any($1::text[])",
            [f"{platform.namespace}_audit", f"{platform.namespace}_approvals"],
        )
        rows: list[str] = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            rows += [r[0] for r in await conn.fetch(f"select row_to_json(t)::text from {name} t")]
        return rows
    finally:
        await conn.close()


async def test_secrets_are_nowhere_but_at_the_outside_service(
    platform: Platform, gov: Service, api: FakeApi
) -> None:
    view = await run_to_end(platform, "gov-secret", {"api": api.url})
    (call,) = [s for s in api.requests if s.path == "/echo"]
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"  # the secret did its job
    output = events(view, "baton.step.succeeded.v1")[0]["output"]["body"]
    assert output["auth"] == "Bearer [redacted]"
    assert "[redacted]" in output["b64"]
    assert "[redacted]" in output["basic"]
    run_id = view["run"]["run_id"]

    async def audited() -> bool | None:  # the audit store has caught up with the run
        rows = await every_row(platform)
        return True if any(run_id in r and "run.failed" in r for r in rows) else None

    await eventually(audited, within=60, what="the run in the audit store")
    forms = secret_forms(TOKEN)
    records = await every_record(platform)
    assert any(run_id.encode() in r for r in records)  # the search saw the run
    assert [f for f in forms if any(f in r for r in records)] == []
    rows = await every_row(platform)
    assert any(run_id in r for r in rows)
    assert [f for f in forms if any(f.decode() in r for r in rows)] == []
    logs = [s.log_path for s in platform.services.values()] + [gov.log_path]
    for path in logs:
        text = path.read_bytes()
        assert [f for f in forms if f in text] == [], path
    async with httpx.AsyncClient() as client:
        bundle = await client.get(
            f"{platform.url('audit')}/runs/{run_id}/evidence", timeout=60, headers=VIEWER
        )
    assert bundle.status_code == 200
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    assert any(run_id.encode() in c for c in contents.values())
    assert [(n, f) for n, c in contents.items() for f in forms if f in c] == []


DRAFT_STORY = """
id: gov-draft
version: 1
owner: secops
trigger: {webhook: {path: gov-draft}}
steps:
  lookup: {action: http, queue: gov, with: {url: "{{ event.api }}/lookup"}}
"""


async def test_a_draft_runs_only_after_someone_else_approved_it(
    platform: Platform, topics: TopicSettings, gov: Service, api: FakeApi
) -> None:
    story = parse_story(DRAFT_STORY)
    await publish_stories(
        platform.bootstrap,
        topics,
        [(story, DRAFT_STORY)],
        author="alice",
        judge=lambda _: (1, []),
    )
    await publish_approval(
        platform.bootstrap,
        topics,
        StoryApproved(story_id="gov-draft", version=1, approver="alice", author="alice"),
    )
    async with httpx.AsyncClient() as client:
        # the ingest service reads the draft and the self-approval, and keeps it dark
        for _ in range(6):
            refused = await client.post(
                f"{platform.url('ingest')}/webhooks/gov-draft", json={"api": api.url}
            )
            assert refused.status_code == 404, refused.text
            await asyncio.sleep(0.5)
    await publish_approval(
        platform.bootstrap,
        topics,
        StoryApproved(story_id="gov-draft", version=1, approver="bob", author="alice"),
    )
    view = await run_to_end(platform, "gov-draft", {"api": api.url})
    assert view["run"]["status"] == "succeeded"

    async def listed() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{platform.url('audit')}/story-approvals",
                params={"story_id": "gov-draft"},
                headers=VIEWER,
            )
        items: list[dict[str, Any]] = answer.json()["items"]
        return items if len(items) == 2 else None

    approvals = await eventually(listed, within=60, what="approvals in the audit store")
    assert {(a["approver"], a["author"]) for a in approvals} == {
        ("alice", "alice"),
        ("bob", "alice"),
    }
