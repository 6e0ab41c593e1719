"""The shared outbound record encoder writes what the general codec writes, byte for byte."""

from __future__ import annotations

from datetime import timedelta, timezone

from envelope_cases import JSON_OBJECTS, T
from envelope_cases import envelope_with as envelope
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from baton_common.envelope import decode_record, encode_record
from baton_common.hashing import chained
from baton_common.kafka import outbound
from baton_common.outbound_records import encoded, record


@settings(max_examples=200, deadline=None)
@given(
    JSON_OBJECTS,
    st.none() | st.text(),
    st.none() | st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=10**9),
)
def test_any_envelope_encodes_as_encode_record(
    data: dict[str, JsonValue], subject: str | None, seq: int | None, micros: int
) -> None:
    event = envelope(
        data,
        subject=subject,
        seq=seq,
        storyid="s",
        storyversion=2,
        actor="ren\u00e9",
        time=T + timedelta(microseconds=micros),
        hash="f" * 64,
    )
    assert encoded(event) == encode_record(event)
    reused = chained(event)[1]
    if reused is not None:
        assert encoded(event, reused) == encode_record(event)


def test_times_in_any_zone_encode_as_encode_record() -> None:
    zones = [timezone(timedelta(hours=2)), timezone(timedelta(0)), timezone(-timedelta(hours=5))]
    decoded = decode_record(*encode_record(envelope({"a": 1}))).time  # pydantic's own zone
    for time in [T.astimezone(zone) for zone in zones] + [decoded, T.replace(microsecond=0)]:
        event = envelope({"a": 1}, time=time)
        assert encoded(event) == encode_record(event)


def test_records_of_one_command_and_the_next_carry_their_own_time() -> None:
    first = envelope({"a": 1})
    later = envelope({"a": 1}, time=T + timedelta(seconds=1))
    for event in (first, first, later, first):
        assert encoded(event) == encode_record(event)


def test_records_sharing_attribute_objects_each_carry_their_own() -> None:
    run, other = "run-1", "".join(["run-", "2"])  # a distinct object, another text
    shared = {"subject": run, "actor": "alice", "storyid": "s", "storyversion": 3}
    events = [
        envelope({"a": 1}, **shared),
        envelope({"a": 2}, **shared, seq=1),
        envelope({"a": 3}, **{**shared, "subject": other, "actor": None}),
        envelope({"a": 4}, **shared, seq=2),
        envelope({"a": 5}, **{**shared, "storyversion": 4}),
    ]
    for event in events + events[::-1]:
        assert encoded(event) == encode_record(event)


def test_floats_and_huge_integers_encode_as_the_general_path() -> None:
    for data in ({"x": 1e-05}, {"x": float("nan")}, {"x": 2**64}, {"x": [{"y": 0.5}]}):
        event = envelope(data)  # type: ignore[arg-type]
        assert encoded(event) == encode_record(event)


def test_record_is_outbound() -> None:
    event = envelope({"a": [1, "b"]}, subject="run-1")
    assert record("t", "run-1", event, partition=2) == outbound("t", "run-1", event, partition=2)
    assert record("t", None, event) == outbound("t", None, event)
