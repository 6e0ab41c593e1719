from __future__ import annotations

import pytest
from pydantic import JsonValue

from baton_common.expressions import ExpressionError, evaluate_condition, render_value

CONTEXT: dict[str, JsonValue] = {
    "event": {"severity": "high", "url": "evil.example", "tags": ["a", "b"]},
    "steps": {"verdict": {"output": {"confidence": 0.95, "label": "malicious"}}},
}


def test_conditions_and_templates() -> None:
    assert evaluate_condition('event.severity in ["high", "critical"]', CONTEXT)
    assert evaluate_condition(
        'steps.verdict.output.confidence >= 0.9 and steps.verdict.output.label == "malicious"',
        CONTEXT,
    )
    assert render_value({"u": "https://r/{{ event.url }}", "t": "{{ event.tags }}"}, CONTEXT) == {
        "u": "https://r/evil.example",
        "t": ["a", "b"],
    }


HOSTILE = [
    "event.__class__",
    "event.__class__.__mro__[1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "event.tags.append('x')",
    "event.tags.pop()",
    "lipsum.__globals__['os'].system('id')",
    "cycler.__init__.__globals__",
    "range(10**9)",
    "self.__init__.__globals__",
    "config",
    "request",
    "'{0.__class__.__mro__}'.format(event)",
    "event.update({'x': 1})",
    "''.__class__.__mro__[-1].__subclasses__()",
    "__import__('os')",
    "open('/etc/passwd').read()",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_hostile_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate_condition(expression, CONTEXT)
    with pytest.raises(ExpressionError):
        render_value("{{ " + expression + " }}", CONTEXT)


def test_hostile_expressions_do_not_mutate_data() -> None:
    with pytest.raises(ExpressionError):
        evaluate_condition("event.tags.append('x')", CONTEXT)
    event = CONTEXT["event"]
    assert isinstance(event, dict)
    assert event["tags"] == ["a", "b"]


def test_missing_data_is_an_error_with_the_reason() -> None:
    with pytest.raises(ExpressionError, match="nope"):
        render_value("{{ event.nope }}", CONTEXT)


def test_a_cached_template_renders_each_context_afresh() -> None:
    """Text templates are compiled once and reused: a second render sees its own data,
    a secret reference stays a placeholder, and data spelling a placeholder stays defused."""
    template = "https://r/{{ event.url }}?t={{ secrets.TOKEN }}"
    first = render_value(template, CONTEXT)
    second = render_value(template, {"event": {"url": "{{ secrets.TOKEN }}"}})
    assert first == "https://r/evil.example?t={{ secrets.TOKEN }}"
    assert second == "https://r/{ { secrets.TOKEN }}?t={{ secrets.TOKEN }}"
    assert render_value(template, CONTEXT) == first
    with pytest.raises(ExpressionError):  # a failed compile is not cached as a success
        render_value("x {{ event.url ", CONTEXT)
    with pytest.raises(ExpressionError):
        render_value("x {{ event.url ", CONTEXT)
