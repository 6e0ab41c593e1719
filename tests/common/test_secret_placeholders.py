"""Secret references render to placeholders; only ``resolve_secrets`` fills them in."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from baton_common.expressions import (
    ExpressionError,
    evaluate_condition,
    evaluate_value,
    render_value,
    resolve_secrets,
    secret_names,
)

CONTEXT: dict[str, JsonValue] = {"event": {"user": "ann", "n": 2}}


def test_a_secret_reference_stays_a_placeholder_in_rendered_input() -> None:
    rendered = render_value(
        {
            "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
            "whole": "{{ secrets.OTHER }}",
            "item": "{{ secrets['THIRD'] ~ ':' ~ event.user }}",
            "plain": "{{ event.n }}",
        },
        CONTEXT,
    )

    assert rendered == {
        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
        "whole": "{{ secrets.OTHER }}",
        "item": "{{ secrets.THIRD }}:ann",
        "plain": 2,
    }
    assert secret_names(rendered) == {"API_TOKEN", "OTHER", "THIRD"}


def test_resolution_replaces_every_placeholder() -> None:
    rendered = render_value(["a {{ secrets.A }} b {{ secrets.B }}", {"k": "{{ secrets.A }}"}], {})

    resolved = resolve_secrets(rendered, {"A": "alpha", "B": "beta"}.__getitem__)

    assert resolved == ["a alpha b beta", {"k": "alpha"}]


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ secrets.__class__ }}", "unsafe"),
        ("{{ secrets['no-dash'] }}", "secret name"),
        ("{{ secrets._private }}", "secret name"),
    ],
)
def test_bad_secret_references_are_refused(template: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=fragment):
        render_value(template, {})


def test_conditions_cannot_read_secrets() -> None:
    with pytest.raises(ExpressionError, match="'secrets' is undefined"):
        evaluate_condition("secrets.TOKEN == 'x'", {})


def test_evaluate_value_returns_json() -> None:
    assert evaluate_value("event.n * 10", CONTEXT) == 20
    assert evaluate_value("{'who': event.user}", CONTEXT) == {"who": "ann"}
    with pytest.raises(ExpressionError):
        evaluate_value("event.missing.deeper", CONTEXT)


def test_two_templates_side_by_side_render_as_text() -> None:
    context: dict[str, JsonValue] = {"event": {"api": "http://x", "target": "flaky"}}

    assert render_value("{{ event.api }}/{{ event.target }}", context) == "http://x/flaky"
    assert render_value("{{ secrets.A }}:{{ secrets.B }}", {}) == "{{ secrets.A }}:{{ secrets.B }}"
