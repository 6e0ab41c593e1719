"""Text templates of plain outputs render without Jinja2, to the same text (ADR 0150)."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from baton_common.expressions import (
    ExpressionError,
    _compiled_template,
    _planned_template,
    _with_secrets,
    render_value,
)

CONTEXT: dict[str, JsonValue] = {
    "event": {
        "n": 3,
        "text": "say {{ secrets.TOKEN }} twice",
        "f": 1.5,
        "tiny": 1e-05,
        "list": [1, "two", None],
        "nested": {"a": None, "b": [True]},
        "yes": True,
        "none": None,
        "unicode": "é ✓",
    },
    "steps": {"fetch": {"status": "succeeded", "output": {"id": 7}, "error": None}},
    "run": {"id": "r-1"},
}

PLANNED = [
    "http://x/{{ event.n }}",
    "{{ event.n }}-{{ event.text }}",
    "a{{event.f}}b{{ event.list }}{{ event.nested }} {{ event.yes }} {{ event.none }}",
    "{{ event.tiny }} and {{ event.unicode }}",
    "{{ steps.fetch.output.id }}/{{ steps['fetch'].status }}/{{ event.list[1] }}",
    "x {{ secrets.K }} y",
    "{{ event.n == 3 }} {{ event.n in [1, 2] }} {{ not event.yes }}",
    "no outputs at all {{ run.id }}",
]


@pytest.mark.parametrize("template", PLANNED)
def test_a_planned_template_renders_as_jinja_does(template: str) -> None:
    jinja = _compiled_template(template).render(_with_secrets(CONTEXT))
    assert render_value(template, CONTEXT) == jinja


@pytest.mark.parametrize(
    "template",
    [
        "{{ event.n }}\n",
        "{{- event.n }} x",
        "x {{ event.n -}}",
        "x {{ 'a}}b' }}",
        "a }} {{ event.n }}",
        "{% if event.yes %}y{% endif %} {{ event.n }}",
        "{# note #}{{ event.n }} x",
        "{{ event.list | length }} x",
    ],
)
def test_other_templates_get_no_plan(template: str) -> None:
    assert _planned_template(template) is None


def test_a_missing_key_is_jinjas_error() -> None:
    with pytest.raises(ExpressionError, match="no attribute 'missing'"):
        render_value("x {{ event.missing }}", CONTEXT)


def test_a_key_jinja_reads_as_an_attribute_falls_back_to_jinja() -> None:
    context: dict[str, JsonValue] = {"event": {"items": [1]}}
    jinja = _compiled_template("x {{ event.items }}").render(_with_secrets(context))
    assert render_value("x {{ event.items }}", context) == jinja
    assert jinja.startswith("x <built-in method items")
