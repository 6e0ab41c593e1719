"""The chain hash's orjson path against the reference canonical JSON it replaces.

``chain_hash`` must stay byte-identical in meaning: the audit service verifies chains the
scheduler wrote before this path existed, and will verify the ones it writes now.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta, timezone

import orjson
from envelope_cases import JSON_OBJECTS, T, envelope_with
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from baton_common.envelope import Envelope, encode_record
from baton_common.hashing import chain_hash, chained, plain_json


def reference_hash(envelope: Envelope) -> str:
    """``chain_hash`` before the orjson path, verbatim."""
    content = envelope.model_dump(mode="json", exclude={"hash"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def envelope(data: dict[str, JsonValue], **attributes: object) -> Envelope:
    """A chained event: seq and prevhash set unless ``attributes`` say otherwise."""
    return envelope_with(data, **{"subject": "run-1", "seq": 3, "prevhash": "a" * 64, **attributes})


@settings(max_examples=200, deadline=None)
@given(JSON_OBJECTS, st.text(), st.none() | st.text())
def test_any_data_hashes_as_the_reference(
    data: dict[str, JsonValue], actor: str, traceparent: str | None
) -> None:
    event = envelope(data, actor=actor, traceparent=traceparent)
    assert chain_hash(event) == reference_hash(event)


def test_the_edge_cases_of_each_path_hash_as_the_reference() -> None:
    cases: list[dict[str, JsonValue]] = [
        {},
        {"url": "http://x/1", "n": 2**63 - 1, "ok": True, "none": None},
        {"big": 2**64, "bigger": 2**70, "negative": -(2**63)},  # orjson refuses beyond 64 bits
        {"small": 1e-05, "large": 1e16, "plain": 0.5},  # orjson writes 1e-05 as 0.00001
        {"nan": float("nan"), "inf": float("inf")},
        {"control": "\x00\x1f\x7f\u2028", "quote": '"\\', "é": "ü☃😀", "\uffff": 1},
        {"nested": {"b": [1, {"z": None, "a": ["x"]}], "a": {}}},
    ]
    for data in cases:
        assert chain_hash(envelope(data)) == reference_hash(envelope(data))
    for time in (T.replace(microsecond=0), T.astimezone(timezone(timedelta(hours=2)))):
        assert chain_hash(envelope({}, time=time)) == reference_hash(envelope({}, time=time))
    unchained = envelope({"a": 1}, seq=None, prevhash=None, subject=None, storyversion=4)
    assert chain_hash(unchained) == reference_hash(unchained)


def test_plain_json_is_only_what_orjson_writes_canonically() -> None:
    assert plain_json({"a": [1, "x", None, True, {"b": []}]})
    assert plain_json({"a": [1.0, 0.93, -0.0, 1e16, 5e-324, 1e-4]})  # written as repr writes
    for odd in (1e-05, 2.5e-07, float("nan"), float("inf"), -float("inf")):
        assert not plain_json({"a": [0.5, {"b": odd}]})
    assert not plain_json({"a": ("tuple",)})


@settings(max_examples=300, deadline=None)
@given(st.floats())
def test_a_float_is_plain_only_when_orjson_writes_it_as_the_standard_library(
    number: float,
) -> None:
    standard = json.dumps(number).encode()
    assert plain_json({"x": number}) == (orjson.dumps(number) == standard)
    event = envelope({"x": number, "n": [number]})
    assert chain_hash(event) == reference_hash(event)
    _, value = chained(event)
    if plain_json({"x": number}):
        assert value == encode_record(chained(event)[0])[0]
    else:
        assert value is None


def test_chained_is_model_copy_with_the_hash_and_gives_the_record_value() -> None:
    draft = envelope({"a": [1, 2], "b": {"é": None}}, actor="ren\u00e9")
    event, value = chained(draft)
    expected = draft.model_copy(update={"hash": reference_hash(draft)})
    assert event == expected
    assert event.model_fields_set == expected.model_fields_set
    assert event.model_dump() == expected.model_dump()
    assert draft.hash is None  # the draft is left as it was
    assert value == encode_record(event)[0]
    floats, none = chained(envelope({"x": 1e-05}))
    assert none is None  # the reference path wrote it: no value to reuse
    assert floats.hash == reference_hash(envelope({"x": 1e-05}))
    half, value = chained(envelope({"x": 0.5}))
    assert half.hash == reference_hash(envelope({"x": 0.5}))
    assert value == b'{"x":0.5}'  # a float written as repr writes it: the fast path
