"""Envelopes for codec and hash tests, and Hypothesis strategies for their payloads, edge
cases included: floats (NaN, infinities, values orjson writes differently from the
standard library), integers beyond 64 bits, any text."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st
from pydantic import JsonValue

from baton_common.envelope import Envelope

T = datetime(2026, 11, 30, 18, 5, 7, 123_456, tzinfo=UTC)


def envelope_with(data: dict[str, JsonValue], **attributes: object) -> Envelope:
    """A validated envelope of ``data``: a step dispatch at ``T`` unless ``attributes`` say
    otherwise."""
    values: dict[str, object] = {
        "id": "e1",
        "type": "baton.step.dispatched.v1",
        "source": "baton/scheduler",
        "time": T,
        "data": data,
    }
    values.update(attributes)
    return Envelope.model_validate(values)


JSON_VALUES: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
JSON_OBJECTS: st.SearchStrategy[dict[str, JsonValue]] = st.dictionaries(
    st.text(), JSON_VALUES, max_size=6
)
