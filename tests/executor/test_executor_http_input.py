"""``parse_input``'s shorter road gives exactly what the model's validation gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from baton_executor.actions.http_input import HttpInput, _quick, parse_input

URLS = st.sampled_from(
    [
        "https://x.example/a?b=1",
        "http://127.0.0.1:8080/enrich",
        "http://[::1]/",
        "HTTP://X.EXAMPLE/",
        "ftp://x.example/",
        "x.example/path",
        "http://",
        "http://x:99999/",
        "http://[::1/",
        "",
    ]
)
SCALARS = st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False), st.booleans())
ANY_JSON = st.recursive(
    st.one_of(st.none(), SCALARS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
# values that validation keeps, and near misses (None, nested lists) that it refuses
NEAR = st.one_of(SCALARS, st.none(), st.lists(st.one_of(SCALARS, st.none()), max_size=2))
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "url": st.one_of(URLS, st.integers()),
    "method": st.one_of(st.sampled_from(["GET", "post", "Patch", "FETCH", ""]), st.integers()),
    "headers": st.one_of(st.dictionaries(st.text(max_size=4), NEAR, max_size=3), ANY_JSON),
    "query": st.one_of(st.dictionaries(st.text(max_size=4), NEAR, max_size=3), ANY_JSON),
    "json": ANY_JSON,
    "form": st.dictionaries(st.text(max_size=4), SCALARS, max_size=2),
    "timeout": st.one_of(st.integers(), st.floats(allow_nan=False)),
    "bogus": ANY_JSON,
}
INPUTS = st.fixed_dictionaries(
    {"url": VALUES["url"]},
    optional={k: v for k, v in VALUES.items() if k != "url"},
)

# the shape the short road takes, with near misses inside
USUAL = st.fixed_dictionaries(
    {
        "url": st.sampled_from(
            ["https://x.example/a?b=1", "http://127.0.0.1:8080/", "http://[::1]/"]
        )
    },
    optional={
        "method": st.sampled_from(["GET", "post", "Patch", "FETCH"]),
        "headers": st.dictionaries(st.text(max_size=4), NEAR, max_size=3),
        "query": st.dictionaries(st.text(max_size=4), NEAR, max_size=3),
        "json": ANY_JSON,
    },
)


def state(model: HttpInput) -> str:
    # repr tells 1 from 1.0 from True, which == does not
    return repr((sorted(model.model_fields_set), model.__dict__))


@settings(max_examples=300, deadline=None)
@given(st.one_of(INPUTS, USUAL))
def test_the_short_road_agrees_with_validation(value: dict[str, Any]) -> None:
    quick = _quick(value)
    try:
        validated = HttpInput.model_validate(value)
    except ValidationError:
        assert quick is None
        return
    if quick is not None:
        assert state(quick) == state(validated)
    assert state(parse_input(value)) == state(validated)


def test_the_usual_input_takes_the_short_road() -> None:
    value: dict[str, Any] = {
        "url": "http://127.0.0.1:8080/enrich",
        "method": "post",
        "headers": {"X-Team": "secops", "X-N": 3},
        "query": {"tag": ["a", "b"]},
        "json": {"i": 1},
    }

    quick = _quick(value)

    assert quick is not None
    assert state(quick) == state(HttpInput.model_validate(value))


@pytest.mark.parametrize(
    "value",
    [
        {"url": "ftp://x.example/"},
        {"url": "https://x.example/", "method": "FETCH"},
        {"url": "https://x.example/", "headers": {"a": None}},
        {"url": "https://x.example/", "timeout": 5},
    ],
)
def test_anything_else_is_left_to_validation(value: dict[str, Any]) -> None:
    assert _quick(value) is None
