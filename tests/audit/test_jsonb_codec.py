"""The audit store's jsonb codec (orjson with a standard-library fallback) says what
the standard library said: same documents back, same refusals."""

from __future__ import annotations

import json
import math

import pytest

from baton_audit.db import _decode_jsonb, _encode_jsonb, has_non_finite

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


def test_times_in_rows_documents_are_written_as_isoformat_on_either_path() -> None:
    # The set-based writes' documents carry times (``times``): orjson writes them as
    # ``isoformat`` does; the standard library (when orjson refuses the document, here
    # an integer beyond 64 bits) through the same ``isoformat``; a naive time is refused.
    from datetime import UTC, datetime, timedelta, timezone

    times = [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 8, 30, 15, 250, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(1, 1, 1, tzinfo=UTC),
    ]
    for time in times:
        expected = [["r1", time.isoformat(), None]]
        fast = _encode_jsonb([["r1", time, None]], times=True)
        slow = _encode_jsonb([["r1", time, 2**70]], times=True)
        assert fast == b"\x01" + json.dumps(expected, separators=(",", ":")).encode()
        assert json.loads(slow[1:]) == [["r1", time.isoformat(), 2**70]]
        assert has_non_finite([time, math.nan])
        assert not has_non_finite([time, None])
    with pytest.raises(TypeError):
        _encode_jsonb([["r1", datetime(2026, 1, 1), 2**70]], times=True)  # noqa: DTZ001
    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode_jsonb([object()])
