"""The expression fast path answers exactly what Jinja2's sandbox answers, or defers to it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
from pydantic import JsonValue

from baton_common import expressions
from baton_common.expression_plans import plan_expression
from baton_common.expressions import ExpressionError, evaluate_condition, render_value

EVENTS: list[JsonValue] = [
    {
        "alert_id": "a-1",
        "severity": "high",
        "n": 3,
        "score": 0.5,
        "ok": True,
        "none": None,
        "tags": ["x", "y"],
        "host": {"name": "ws-1", "ip": "10.0.0.1", "items": 2},
        "items": "shadowed by dict.items",
        "get": 1,
        "_private": "p",
        "text": "{{ secrets.TOKEN }}",
    },
    {"alert_id": 7, "severity": "low", "n": "3", "tags": [], "host": None},
    {},
]

SOURCES = [
    "event.alert_id",
    "event.host.name",
    "event.host.items",
    "event.items",
    "event.get",
    "event.keys",
    "event._private",
    "event.__class__",
    "event.missing",
    "event.host.missing",
    "event.none.x",
    "event.tags[0]",
    "event.tags[-1]",
    "event.tags[5]",
    'event["alert_id"]',
    'event["host"]["ip"]',
    "event.text",
    "event.severity.upper",
    'event.severity == "high"',
    'event.severity != "high"',
    'event.severity in ["high", "critical"]',
    'event.severity not in ("high",)',
    '"x" in event.tags',
    '"ws" in event.host.name',
    "event.n > 2",
    "event.n <= 3",
    'event.n < "a"',
    "event.score >= 0.5",
    "event.ok and event.n",
    "event.ok or event.missing",
    "event.none or event.missing",
    "event.none and event.missing",
    "not event.ok",
    "not event.missing",
    "[event.alert_id, event.n]",
    "(event.alert_id, 1)",
    "true",
    "none",
    "secrets.TOKEN",
    "self",
    "loop",
    "1 < event.n < 5",
    "event.n + 1",
    "event.tags | length",
    "event.alert_id is defined",
    "event.alert_id ~ '-x'",
    "event.",
]


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return ("ok", call())
    except ExpressionError as exc:
        return ("error", str(exc))


def _jinja_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "_planned_expression", lambda source: None)


def _outcomes(source: str) -> list[tuple[str, object]]:
    """Condition and single-expression template outcomes over every event."""
    outcomes = []
    for event in EVENTS:
        context: dict[str, JsonValue] = {"event": event}
        outcomes.append(_outcome(partial(evaluate_condition, source, context)))
        outcomes.append(_outcome(partial(render_value, "{{ " + source + " }}", context)))
    return outcomes


@pytest.mark.parametrize("source", SOURCES)
def test_the_plan_gives_jinjas_result_or_error(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _outcomes(source)
    _jinja_only(monkeypatch)
    assert fast == _outcomes(source)


def test_simple_expressions_are_planned_and_others_are_not() -> None:
    env = expressions._ENV
    for planned in ("event.alert_id", 'event.severity in ["a"]', "not event.a or event.b"):
        assert plan_expression(env, planned) is not None, planned
    for unplanned in ("event.items", "event.n + 1", "event.tags | length", "a < b < c", "self"):
        assert plan_expression(env, unplanned) is None, unplanned


def test_a_planned_dedup_key_reads_the_event_without_jinja(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(source: str) -> object:
        raise AssertionError(f"Jinja2 compiled {source!r}")

    expressions._compiled_expression.cache_clear()
    monkeypatch.setattr(expressions, "_compiled_expression", refuse)
    assert render_value("{{ event.host.name }}", {"event": EVENTS[0]}) == "ws-1"
    assert evaluate_condition('event.severity == "high"', {"event": EVENTS[0]})
