"""The audit store's jsonb codec (orjson with a standard-library fallback) says what
the standard library said: same documents back, same refusals."""

from __future__ import annotations

import json
import math

import pytest

from baton_audit.db import JsonText, _decode_jsonb, _encode_jsonb, has_non_finite

DOCUMENTS: list[object] = [
    {"a": "\u00e9\u4e2d", "b": [1, 2.5, None, True], "c": {"z": 1}},
    {"big": 123456789012345678901234567890, "neg": -(2**70)},
    [1e16, 5e-324, 0.1, -0.0],
    "text",
    None,
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_round_trip_matches_the_standard_library(document: object) -> None:
    encoded = _encode_jsonb(document)
    assert encoded[:1] == b"\x01"
    assert json.loads(encoded[1:]) == document
    assert _decode_jsonb(encoded) == document
    assert type(_decode_jsonb(encoded)) is type(document)


def test_big_integers_stay_integers() -> None:
    decoded = _decode_jsonb(b'\x01{"n": 123456789012345678901234567890}')
    assert decoded == {"n": 123456789012345678901234567890}


def test_non_finite_numbers_are_not_turned_into_null() -> None:
    # PostgreSQL refuses NaN in jsonb; the codec must pass it on, as before, not hide it.
    assert _encode_jsonb({"x": math.nan}) == b'\x01{"x":NaN}'


def test_types_the_standard_library_refuses_are_refused() -> None:
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        _encode_jsonb({"t": datetime(2026, 1, 1, tzinfo=UTC)})


def test_a_fragment_is_written_as_its_value_on_either_path() -> None:
    # A run's state goes as pydantic's JSON (JsonText, ADR 0550); when orjson
    # refuses the document around it (an integer beyond 64 bits), the standard library
    # writes the fragment's value, and the NaN check reads through it.
    state = JsonText(b'{"steps":{"a":{"output":null}},"n":[1,2.5]}')
    fast = _encode_jsonb([["r1", 1, state]])
    slow = _encode_jsonb([["r1", 2**70, state]])
    assert json.loads(fast[1:]) == [["r1", 1, {"steps": {"a": {"output": None}}, "n": [1, 2.5]}]]
    assert json.loads(slow[1:]) == [
        ["r1", 2**70, {"steps": {"a": {"output": None}}, "n": [1, 2.5]}]
    ]
    assert not has_non_finite([state])
    assert has_non_finite([state, math.inf])
    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode_jsonb([object()])


def test_a_fragment_is_copied_in_as_written_by_orjson() -> None:
    # orjson's path copies the text as it is (spaces kept); the standard library would
    # parse it and write it again, compact: the bytes tell which path wrote the document.
    state = JsonText(b'{"n": [1, 2.5]}')
    assert _encode_jsonb([["r1", 1, state]], finite=True) == b'\x01[["r1",1,{"n": [1, 2.5]}]]'
    assert _encode_jsonb([["r1", None, state]]) == b'\x01[["r1",null,{"n": [1, 2.5]}]]'
