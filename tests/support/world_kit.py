"""The platform wired to the local world (examples/world), for story tests and benchmarks.

The world runs in a thread of the test process on a free port; the five services run as
processes (platform_kit) with the settings ``make up`` gives them (deploy/local/services.sh):
the EDR webhook secret on ingest, the world's LLM, Slack and IdP token on the executor, the
world's Slack (and its signing secret) on approvals. The example stories are published
exactly as written, with the world's and the audit service's addresses swapped in.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from platform_kit import TOKENS, VIEWER, Platform, build_platform, free_port, topic_env

from baton_common.kafka import make_producer, outbound, to_envelope
from baton_common.settings import TopicSettings
from baton_common.story import parse_story
from baton_common.testing import eventually
from baton_common.topics import provision_topics
from baton_world.main import RunningWorld, start_in_thread
from baton_world.settings import WorldSettings

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "examples" / "stories"
WORLD_ADDRESS = "http://127.0.0.1:8090"  # as written in the example stories
AUDIT_ADDRESS = "http://127.0.0.1:8085"
APPROVER = "tok-alice"  # alice is in secops-oncall
MANAGER = "tok-bob"  # bob is also an IT manager
PEOPLE = {
    **TOKENS,
    "tok-alice": {
        "user": "alice",
        "groups": ["secops-oncall"],
        "roles": ["approver@secops", "operator@secops"],
    },
    "tok-bob": {
        "user": "bob",
        "groups": ["secops-oncall", "it-managers"],
        "roles": ["approver@secops", "approver@it"],
    },
}
"""Every service's static tokens in these tests: the platform's, and the two approvers."""
AUDIT_READER = "tok-viewer"
"""The token the stories' own audit calls carry (``secrets.AUDIT_TOKEN``)."""
FORM_TOKEN = "form-token-for-tests"
EVALUATION_TOKEN = "evaluation-token-for-tests"
Json = Any


def service_env(world: WorldSettings, world_url: str) -> dict[str, dict[str, str]]:
    """What each service needs to talk to the world (mirrors deploy/local/services.sh)."""
    providers = {
        "default": {
            "kind": "openai",
            "base_url": f"{world_url}/llm/v1",
            "model": "world-analyst-1",
            "api_key_secret": "WORLD_LLM_KEY",
        }
    }
    return {
        "ingest": {
            "BATON_SECRET_EDR_WEBHOOK_SECRET": world.edr_webhook_secret,
            "BATON_SECRET_HARDWARE_FORM_TOKEN": FORM_TOKEN,
            "BATON_SECRET_EVALUATION_TOKEN": EVALUATION_TOKEN,
        },
        "executor": {
            "BATON_EXECUTOR_AI_PROVIDERS": json.dumps(providers),
            "BATON_SECRET_WORLD_LLM_KEY": world.llm_api_key,
            "BATON_EXECUTOR_SLACK_API_URL": f"{world_url}/slack/api",
            "BATON_SECRET_SLACK_BOT_TOKEN": world.slack_bot_token,
            "BATON_SECRET_IDP_TOKEN": world.idp_token,
            "BATON_SECRET_AUDIT_TOKEN": AUDIT_READER,
        },
        "approvals": {
            "BATON_APPROVALS_SLACK__API_URL": f"{world_url}/slack/api",
            "BATON_APPROVALS_SLACK__BOT_TOKEN": world.slack_bot_token,
            "BATON_APPROVALS_SLACK__SIGNING_SECRET": world.slack_signing_secret,
            "BATON_APPROVALS_SLACK__CHANNEL": "#secops-approvals",
            "BATON_APPROVALS_SLACK__GROUPS": json.dumps(
                {"alice": ["secops-oncall"], "bob": ["secops-oncall", "it-managers"]}
            ),
            "BATON_APPROVALS_SLACK__POLL_SECONDS": "0.2",
        },
    }


def story_text(name: str, world_url: str, audit_url: str) -> str:
    """An example story's YAML, pointed at this world and audit service."""
    text = (STORIES / f"{name}.yaml").read_text()
    return text.replace(WORLD_ADDRESS, world_url).replace(AUDIT_ADDRESS, audit_url)


@dataclass
class WorldStack:
    platform: Platform
    world: RunningWorld
    topics: TopicSettings

    @property
    def world_url(self) -> str:
        return self.world.url

    def url(self, service: str) -> str:
        return self.platform.url(service)


@contextmanager
def world_stack(
    bootstrap: str, database_url: str, log_dir: Path, stories: list[str]
) -> Iterator[WorldStack]:
    """A fresh platform (own topics and schemas) and world, ``stories`` published."""
    from baton_cli.kafka_ops import publish_stories

    platform = build_platform(bootstrap, database_url, log_dir)
    fields = {
        k.removeprefix("BATON_TOPICS__").lower(): v
        for k, v in topic_env(platform.namespace).items()
    }
    topics = TopicSettings.model_validate(fields)
    settings = WorldSettings(
        http_port=free_port(),
        ingest_url=platform.url("ingest"),
        approvals_url=platform.url("approvals"),
    )
    world = start_in_thread(settings)
    try:
        for name, extra in service_env(settings, world.url).items():
            platform.services[name].env.update(extra)
        for service in platform.services.values():
            service.env["BATON_AUTH__TOKENS"] = json.dumps(PEOPLE)
        asyncio.run(provision_topics(bootstrap, topics))
        texts = [story_text(name, world.url, platform.url("audit")) for name in stories]
        asyncio.run(publish_stories(bootstrap, topics, [(parse_story(t), t) for t in texts]))
        for service in platform.services.values():
            service.start()
        for service in platform.services.values():
            service.wait_ready(within=120)
        yield WorldStack(platform, world, topics)
    finally:
        platform.stop()
        world.stop()
        for service in platform.services.values():
            print(f"--- {service.name} log tail ---\n{service.tail(15)}")


async def world_call(stack: WorldStack, method: str, path: str, body: Json = None) -> Json:
    async with httpx.AsyncClient(base_url=stack.world_url, timeout=60) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code < 400, response.text
    return response.json()


async def send_alert(stack: WorldStack, scenario: str, user: str) -> dict[str, Json]:
    """The EDR console sends one signed alert; retried while ingest has not read the story."""

    async def sent() -> dict[str, Json] | None:
        answer: dict[str, Json] = await world_call(
            stack, "POST", "/_edr/alerts", {"scenario": scenario, "user": user}
        )
        return answer if answer["status"] == 202 else None

    return await eventually(sent, within=60, what=f"ingest accepted a {scenario} alert")


async def recorded(stack: WorldStack, service: str, path: str = "") -> list[dict[str, Json]]:
    """Calls the world received from Baton, oldest first."""
    answer = await world_call(stack, "GET", f"/_calls?service={service}&path={path}")
    calls: list[dict[str, Json]] = answer["calls"]
    return calls


async def run_view(stack: WorldStack, run_id: str) -> dict[str, Json] | None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{stack.url('audit')}/runs/{run_id}", headers=VIEWER)
    if response.status_code == 404:
        return None
    view: dict[str, Json] = response.json()
    return view


async def run_reaches(
    stack: WorldStack, run_id: str, statuses: tuple[str, ...], within: float = 120
) -> dict[str, Json]:
    async def probe() -> dict[str, Json] | None:
        view = await run_view(stack, run_id)
        return view if view is not None and view["run"]["status"] in statuses else None

    return await eventually(probe, within=within, what=f"run {run_id} is {'/'.join(statuses)}")


async def pending_gate(stack: WorldStack, run_id: str, within: float = 120) -> dict[str, Json]:
    """The approval gate of ``run_id`` once the approvals service shows it."""

    async def probe() -> dict[str, Json] | None:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(
                f"{stack.url('approvals')}/approvals",
                params={"state": "pending"},
                headers={"Authorization": f"Bearer {APPROVER}"},
            )
        assert response.status_code == 200, response.text
        items = response.json()
        items = items["items"] if isinstance(items, dict) else items
        found = [g for g in items if g["run_id"] == run_id]
        return found[0] if found else None

    gate: dict[str, Json] = await eventually(probe, within=within, what=f"a gate of {run_id}")
    return gate


async def decide(
    stack: WorldStack, gate_id: str, decision: str, comment: str, token: str = APPROVER
) -> None:
    """Decide a gate through the REST API (as alice unless ``token`` says otherwise)."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.url('approvals')}/approvals/{gate_id}/decision",
            json={"decision": decision, "comment": comment},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 202, response.text


def events_of(view: dict[str, Json], type_: str) -> list[dict[str, Json]]:
    return [e for e in view["timeline"] if e["type"] == type_]


def step_outcomes(view: dict[str, Json]) -> dict[str, str]:
    """Each step's last outcome in the timeline: succeeded, failed or skipped."""
    outcomes: dict[str, str] = {}
    for event in view["timeline"]:
        kind = event["type"].removeprefix("baton.").removesuffix(".v1")
        step = (event.get("data") or {}).get("step")
        if step is None:
            continue
        if kind in ("step.succeeded", "step.failed", "step.skipped"):
            outcomes[step] = kind.split(".")[1]
        elif kind in ("approval.granted", "approval.not-needed"):
            outcomes[step] = "succeeded"
        elif kind == "approval.denied":
            outcomes[step] = "failed"
    return outcomes


async def post_webhook(stack: WorldStack, path: str, body: Json, token: str) -> str:
    """POST a bearer-authenticated webhook (retried while ingest has not read the story)."""

    async def post() -> str | None:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{stack.url('ingest')}/webhooks/{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        if response.status_code == 404:
            return None
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    accepted: str = await eventually(post, within=60, what=f"webhook {path} accepted")
    return accepted


async def start_tick(stack: WorldStack, story_id: str, tick: datetime) -> str:
    """Append the StartRun ingest's ticker appends for ``story_id`` at ``tick``."""
    from baton_ingest.schedule import tick_start

    text = story_text(story_id, stack.world_url, stack.url("audit"))
    command = tick_start(parse_story(text), tick)
    envelope = to_envelope(
        command,
        id=str(uuid.uuid4()),
        source="baton/ingest/schedule",
        time=datetime.now(UTC),
        subject=command.run_id,
        actor="schedule",
    )
    producer = make_producer(stack.platform.bootstrap, client_id="world-tests")
    await producer.start()
    try:
        await outbound(stack.topics.commands, command.run_id, envelope).send(producer)
    finally:
        await producer.stop()
    return command.run_id
