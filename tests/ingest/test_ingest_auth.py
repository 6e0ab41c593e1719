"""Signature presets, timestamped signatures, replay refusal, bearer tokens and NDJSON.

Presets are checked against the vectors GitHub and Slack publish in their documentation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import Headers

from baton_common.story import Story
from baton_common.triggers import Signature, Trigger
from baton_ingest.auth import AuthFailure, WebhookAuth
from baton_ingest.secrets import EnvironmentSecrets
from baton_ingest.signature import (
    ReplayCache,
    SignatureCheck,
    TokenCheck,
    sign,
    verify_bearer,
    verify_signature,
)

from .stories import OPEN, catalog_of, story
from .test_ingest_api import NOW, SECRET, make_intake

pytestmark = pytest.mark.usefixtures("webhook_path")

SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_the_github_preset_verifies_githubs_documented_example() -> None:
    spec = Signature.model_validate({"secret": "GH", "preset": "github"})

    assert (spec.header, spec.prefix, spec.timestamp_header) == (
        "X-Hub-Signature-256",
        "sha256=",
        None,
    )
    outcome = verify_signature(
        b"Hello, World!",
        GITHUB_SIGNATURE,
        key=b"It's a Secret to Everybody",
        prefix=spec.prefix,
        spec=spec,
    )
    assert outcome is SignatureCheck.VALID


def test_the_slack_preset_verifies_slacks_documented_example() -> None:
    spec = Signature.model_validate({"secret": "SLACK", "preset": "slack"})
    signed_at = datetime.fromtimestamp(1531420618, UTC)

    assert (spec.header, spec.timestamp_header) == (
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
    )
    check = {
        "key": b"8f742231b10e8888abcd99yyyzzz85a5",
        "prefix": spec.prefix,
        "timestamp": "1531420618",
        "spec": spec,
    }
    assert verify_signature(SLACK_BODY, SLACK_SIGNATURE, **check, now=signed_at) is (  # type: ignore[arg-type]
        SignatureCheck.VALID
    )
    late = signed_at + timedelta(minutes=6)
    assert verify_signature(SLACK_BODY, SLACK_SIGNATURE, **check, now=late) is (  # type: ignore[arg-type]
        SignatureCheck.STALE
    )


def test_explicit_fields_win_over_a_preset() -> None:
    spec = Signature.model_validate({"secret": "S", "preset": "github", "header": "X-Sig"})
    assert (spec.header, spec.prefix) == ("X-Sig", "sha256=")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer tok", TokenCheck.VALID),
        ("bearer  tok ", TokenCheck.VALID),
        ("Bearer other", TokenCheck.MISMATCH),
        ("Basic dG9r", TokenCheck.MISSING),
        ("Bearer ", TokenCheck.MISSING),
        (None, TokenCheck.MISSING),
    ],
)
def test_bearer_tokens(authorization: str | None, expected: TokenCheck) -> None:
    assert verify_bearer(authorization, token="tok") is expected


def test_the_replay_cache_forgets_after_expiry_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=2)
    cache.remember("a", expires_at=100, now=0)
    assert cache.seen("a", now=99)
    assert not cache.seen("a", now=100)
    for key in ("b", "c", "d"):
        cache.remember(key, expires_at=500, now=0)
    assert not cache.seen("b", now=0)
    assert cache.seen("d", now=0)


def test_a_trigger_has_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Trigger.model_validate({})
    with pytest.raises(ValueError, match="`signature` or `bearer`"):
        Trigger.model_validate(
            {"webhook": {"path": "p", "signature": {"secret": "A"}, "bearer": {"secret": "B"}}}
        )


def _signed_story(story_id: str, secret: str) -> Story:
    webhook = {"path": "shared", "signature": {"secret": secret}}
    return story(OPEN, id=story_id, trigger={"webhook": webhook})


def test_stories_sharing_a_path_need_every_distinct_signature_once() -> None:
    """Two stories with the same requirement take one signature; a third with another
    secret needs its own too, and a request missing it is refused."""
    keys = {"BATON_SECRET_A": "key-a", "BATON_SECRET_B": "key-b"}
    auth = WebhookAuth(EnvironmentSecrets(keys))
    body = b'{"alert_id": "a-1"}'
    same = [_signed_story("one", "A"), _signed_story("two", "A")]
    headers = Headers({"x-baton-signature": sign(body, b"key-a")})
    assert auth.check(same, headers, body, NOW).replay_keys == []
    with pytest.raises(AuthFailure) as refused:
        auth.check([*same, _signed_story("three", "B")], headers, body, NOW)
    assert (refused.value.status, refused.value.reason) == (403, "signature_invalid")


# --- over HTTP, with the in-memory publisher ---------------------------------------------

TIMED = story(
    OPEN,
    trigger={
        "webhook": {
            "path": "timed",
            "signature": {
                "secret": "EDR_WEBHOOK_SECRET",
                "timestamp_header": "X-Timestamp",
                "tolerance": "5m",
            },
        }
    },
)
BEARER = story(
    OPEN,
    id="bearer-hook",
    trigger={"webhook": {"path": "token", "bearer": {"secret": "EDR_WEBHOOK_SECRET"}}},
)
KAFKA_ONLY = story(OPEN, id="kafka-only", trigger={"webhook": {"path": "feed", "http": False}})


def timed_headers(body: bytes, at: datetime, key: str = SECRET) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    return {
        "content-type": "application/json",
        "X-Timestamp": stamp,
        "X-Baton-Signature": sign(body, key.encode(), timestamp=stamp),
    }


def stories() -> list[Story]:
    return [TIMED, BEARER, KAFKA_ONLY]


async def test_timestamped_signatures_stale_and_replayed_requests() -> None:
    body = b'{"alert_id": "a-1"}'
    async with make_intake(catalog_of(*stories())) as intake:
        fresh = timed_headers(body, NOW - timedelta(seconds=30))
        accepted = await intake.client.post("/webhooks/timed", content=body, headers=fresh)
        replayed = await intake.client.post("/webhooks/timed", content=body, headers=fresh)
        stale = await intake.client.post(
            "/webhooks/timed", content=body, headers=timed_headers(body, NOW - timedelta(hours=1))
        )
        future = await intake.client.post(
            "/webhooks/timed", content=body, headers=timed_headers(body, NOW + timedelta(hours=1))
        )
        unstamped = await intake.client.post(
            "/webhooks/timed",
            content=body,
            headers={k: v for k, v in fresh.items() if k != "X-Timestamp"},
        )
        moved = await intake.client.post(
            "/webhooks/timed",
            content=body,
            headers={**fresh, "X-Timestamp": str(int(NOW.timestamp()))},
        )

        assert accepted.status_code == 202
        assert (replayed.status_code, intake.rejected("replayed")) == (409, 1)
        assert (stale.status_code, future.status_code) == (403, 403)
        assert intake.rejected("timestamp_stale") == 2
        assert (unstamped.status_code, intake.rejected("timestamp_missing")) == (401, 1)
        # the timestamp is signed: changing it breaks the signature
        assert (moved.status_code, intake.rejected("signature_invalid")) == (403, 1)
        assert len(intake.publisher.published) == 1


async def test_a_request_refused_by_kafka_is_not_remembered_as_a_replay() -> None:
    body = b'{"alert_id": "a-2"}'
    headers = timed_headers(body, NOW)
    async with make_intake(catalog_of(*stories()), publish_timeout_seconds=0.05) as intake:
        intake.publisher.error = RuntimeError("broker down")
        first = await intake.client.post("/webhooks/timed", content=body, headers=headers)
        intake.publisher.error = None
        retry = await intake.client.post("/webhooks/timed", content=body, headers=headers)

        assert (first.status_code, retry.status_code) == (503, 202)


async def test_bearer_secret() -> None:
    async with make_intake(catalog_of(*stories())) as intake:

        async def post(headers: dict[str, str]) -> int:
            response = await intake.client.post(
                "/webhooks/token",
                content=b"{}",
                headers={"content-type": "application/json", **headers},
            )
            return response.status_code

        assert await post({"authorization": f"Bearer {SECRET}"}) == 202
        assert await post({"authorization": "Bearer guess"}) == 403
        assert await post({}) == 401
        assert len(intake.publisher.published) == 1


async def test_a_kafka_only_path_is_not_served_over_http() -> None:
    async with make_intake(catalog_of(*stories())) as intake:
        response = await intake.client.post(
            "/webhooks/feed", content=b"{}", headers={"content-type": "application/json"}
        )
        assert response.status_code == 404


NDJSON = {"content-type": "application/x-ndjson"}


async def test_ndjson_is_accepted_line_by_line() -> None:
    body = b'{"n": 1}\n\n{"n": 2}\r\n{"n": 3}\n'
    async with make_intake() as intake:
        response = await intake.client.post("/webhooks/open", content=body, headers=NDJSON)

        assert response.status_code == 202
        ids = response.json()["ids"]
        assert len(ids) == 3 == response.json()["accepted"]
        envelopes = intake.publisher.envelopes()
        assert [e.id for e in envelopes] == ids
        assert [e.data["body"] for e in envelopes] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert intake.accepted() == 3


async def test_ndjson_with_bad_lines_accepts_nothing_and_names_each_line() -> None:
    body = b'{"n": 1}\n{"n": \n[2]\n{"n": 4}\n'
    async with make_intake() as intake:
        response = await intake.client.post("/webhooks/open", content=body, headers=NDJSON)

        assert response.status_code == 422
        report = response.json()
        assert "nothing was accepted" in report["detail"]
        assert [e["line"] for e in report["errors"]] == [2, 3]
        assert "not valid JSON" in report["errors"][0]["error"]
        assert "got an array" in report["errors"][1]["error"]
        assert intake.publisher.calls == 0


async def test_ndjson_beyond_the_in_flight_budget_is_429_as_a_whole() -> None:
    body = b"\n".join(json.dumps({"n": n}).encode() for n in range(5))
    async with make_intake(max_in_flight=4) as intake:
        response = await intake.client.post("/webhooks/open", content=body, headers=NDJSON)

        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert intake.publisher.calls == 0


async def test_an_empty_ndjson_body_is_422() -> None:
    async with make_intake() as intake:
        response = await intake.client.post("/webhooks/open", content=b"\n \n", headers=NDJSON)
        assert response.status_code == 422
        assert "no events" in response.json()["detail"]


def test_stories_with_every_trigger_feature_survive_the_stories_topic_round_trip() -> None:
    from baton_common.records import StoryPublished

    for s in (TIMED, BEARER, KAFKA_ONLY, story(OPEN, trigger=TRIAGE_TRIGGER)):
        published = StoryPublished(story=s, source="test")
        assert StoryPublished.model_validate_json(published.model_dump_json()) == published


TRIAGE_TRIGGER = {
    "webhook": {"path": "edr", "signature": {"secret": "S", "preset": "slack", "tolerance": "90s"}},
    "dedup": {"key": "{{ event.id }}", "window": "2h"},
}
