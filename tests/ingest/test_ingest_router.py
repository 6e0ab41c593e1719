"""The routing decision, without Kafka: which stories an event starts, with which run ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import JsonValue

from baton_common import ids
from baton_common.envelope import Envelope
from baton_common.expressions import ExpressionError, render_value
from baton_common.records import EventReceived
from baton_ingest.router import dedup_key, event_field, route, start_run_envelope

from .stories import AUDIT_ALL, OPEN, TRIAGE, story

INGEST_ID = "0b4f7c38-8f0e-4b7e-9a39-2d5f3f6d1c11"
STORIES = [story(TRIAGE), story(AUDIT_ALL), story(OPEN)]


def event(body: dict[str, JsonValue], path: str | None = "edr-alerts") -> EventReceived:
    return EventReceived(path=path, body=body)


def test_only_stories_on_the_events_path_whose_condition_holds_are_started() -> None:
    body: dict[str, JsonValue] = {"severity": "low", "alert_id": "a-1"}

    routing = route(event(body), body, INGEST_ID, STORIES)

    assert [s.story_id for s in routing.starts] == ["audit-all"]
    assert routing.skipped == ()


def test_a_matching_event_starts_every_matching_story_with_its_version() -> None:
    body: dict[str, JsonValue] = {"severity": "critical", "alert_id": "a-1", "url": "x"}

    routing = route(event(body), body, INGEST_ID, STORIES)

    assert {(s.story_id, s.story_version) for s in routing.starts} == {
        ("phishing-triage", 4),
        ("audit-all", 2),
    }
    assert all(s.trigger == body and s.ingest_id == INGEST_ID for s in routing.starts)


def test_dedup_key_makes_the_run_id_independent_of_the_ingest_record() -> None:
    body: dict[str, JsonValue] = {"severity": "high", "alert_id": "a-42"}

    first = route(event(body), body, INGEST_ID, STORIES).starts
    second = route(event(body), body, "another-ingest-id", STORIES).starts

    triage_first = next(s for s in first if s.story_id == "phishing-triage")
    triage_second = next(s for s in second if s.story_id == "phishing-triage")
    assert triage_first.run_id == triage_second.run_id == ids.run_id_for("phishing-triage", "a-42")
    assert triage_first.dedup_key == "a-42"
    assert triage_first.dedup_window_seconds == 3600


def test_without_dedup_the_run_id_follows_the_ingest_record() -> None:
    body: dict[str, JsonValue] = {"severity": "low"}

    again = route(event(body), body, INGEST_ID, STORIES).starts[0]
    redelivered = route(event(body), body, INGEST_ID, STORIES).starts[0]
    other = route(event(body), body, "other-id", STORIES).starts[0]

    assert again.run_id == redelivered.run_id == ids.run_id_for("audit-all", "ingest:" + INGEST_ID)
    assert other.run_id != again.run_id
    assert again.dedup_key is None
    assert again.dedup_window_seconds is None


def test_a_condition_that_fails_to_evaluate_skips_the_story_with_the_reason() -> None:
    body: dict[str, JsonValue] = {"alert_id": "a-1"}  # no severity: the `when` cannot be read

    routing = route(event(body), body, INGEST_ID, STORIES)

    assert [s.story_id for s in routing.starts] == ["audit-all"]
    assert len(routing.skipped) == 1
    skipped = routing.skipped[0]
    assert (skipped.story_id, skipped.reason) == ("phishing-triage", "when_error")
    assert "severity" in skipped.detail


def test_a_dedup_key_that_cannot_render_skips_the_story() -> None:
    body: dict[str, JsonValue] = {"severity": "high"}  # no alert_id

    routing = route(event(body), body, INGEST_ID, [story(TRIAGE)])

    assert routing.starts == ()
    assert [(s.story_id, s.reason) for s in routing.skipped] == [
        ("phishing-triage", "dedup_key_error")
    ]


def test_an_event_for_an_unknown_path_or_without_path_matches_nothing() -> None:
    body: dict[str, JsonValue] = {"severity": "high", "alert_id": "a"}

    assert not route(event(body, path="nobody"), body, INGEST_ID, STORIES).matched
    assert not route(event(body, path=None), body, INGEST_ID, STORIES).matched


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"alert_id": "abc"}, "abc"),
        ({"alert_id": 17}, "17"),
        ({"alert_id": {"b": 1, "a": [2]}}, '{"a":[2],"b":1}'),
    ],
)
def test_dedup_keys_render_to_stable_text(body: dict[str, JsonValue], expected: str) -> None:
    assert dedup_key("{{ event.alert_id }}", body) == expected


@pytest.mark.parametrize("body", [{"alert_id": None}, {"alert_id": ""}, {}])
def test_empty_or_missing_dedup_keys_are_errors(body: dict[str, JsonValue]) -> None:
    with pytest.raises(ExpressionError):
        dedup_key("{{ event.alert_id }}", body)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("{{ event.alert_id }}", "alert_id"),
        ("{{event.alert_id}}", "alert_id"),
        (" {{ event.A_1 }} ", "A_1"),
        ("{{ event.items }}", None),  # the sandbox returns dict.items, not the field
        ("{{ event.get }}", None),
        ("{{ event._private }}", None),
        ("{{ event.a.b }}", None),
        ("{{ event['a'] }}", None),
        ("{{ event.a }}-{{ event.b }}", None),
        ("{{ event.a | lower }}", None),
        ("{{ trigger.a }}", None),
    ],
)
def test_a_dedup_key_reading_one_event_field_is_recognised(
    template: str, field: str | None
) -> None:
    assert event_field(template) == field


@pytest.mark.parametrize(
    "body",
    [
        {"alert_id": "abc", "items": "x"},
        {"alert_id": "héllo \u2603 \ud83d\ude00"},
        {"alert_id": "  spaced  "},
        {"alert_id": "{{ not rendered }}"},
        {"alert_id": "true"},
        {"alert_id": "17"},
    ],
)
def test_a_one_field_dedup_key_is_what_the_renderer_returns(body: dict[str, JsonValue]) -> None:
    for template in ("{{ event.alert_id }}", "{{event.alert_id}}"):
        assert dedup_key(template, body) == render_value(template, {"event": body})
    with pytest.raises(ExpressionError):  # dict.items, as the renderer sees it
        dedup_key("{{ event.items }}", body)


def test_start_run_envelope_carries_the_ingest_record_forward() -> None:
    body: dict[str, JsonValue] = {"severity": "high", "alert_id": "a-1"}
    start = route(event(body), body, INGEST_ID, [story(TRIAGE)]).starts[0]
    ingest = Envelope(
        id=INGEST_ID,
        type="baton.ingest.received.v1",
        source="baton/ingest/webhook/edr-alerts",
        time=datetime(2024, 5, 1, tzinfo=UTC),
        correlationid=INGEST_ID,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    now = datetime(2024, 5, 1, 0, 0, 1, tzinfo=UTC)

    envelope = start_run_envelope(start, ingest, id="cmd-1", time=now)

    assert envelope.type == "baton.run.start.v1"
    assert envelope.subject == start.run_id
    assert (envelope.storyid, envelope.storyversion) == ("phishing-triage", 4)
    assert envelope.causationid == INGEST_ID
    assert envelope.correlationid == INGEST_ID
    assert envelope.traceparent == ingest.traceparent
    assert envelope.source == "baton/ingest"
    assert envelope.time == now
    assert envelope.data["run_id"] == start.run_id
