"""Secret references render to placeholders; only ``resolve_secrets`` fills them in."""

from __future__ import annotations

import json

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
            "item": "{{ secrets['THIRD'] }}:{{ event.user }}",
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


@pytest.mark.parametrize(
    "template",
    ["{{ event.note }}", "note: {{ event.note }}", "{{ event }}", "{{ event.note | upper }}"],
)
def test_data_that_spells_a_placeholder_does_not_become_one(template: str) -> None:
    hostile: dict[str, JsonValue] = {
        "event": {"note": "{{ secrets.API_TOKEN }}", "{{ secrets.KEY }}": 1}
    }

    rendered = render_value({"text": template, "auth": "{{ secrets.REAL }}"}, hostile)

    assert secret_names(rendered) == {"REAL"}
    assert "secrets.API_TOKEN" in json.dumps(rendered).replace("SECRETS", "secrets")


def test_a_reference_built_inside_an_expression_fails_safe() -> None:
    # Only a reference standing in its own {{ }} is a placeholder; anything computed from it
    # is text the executor leaves alone (so data can never forge one).
    rendered = render_value("{{ secrets.TOKEN ~ '!' }}", {})

    assert secret_names(rendered) == set()
