"""A fast path for the simplest expressions, with the sandbox's exact semantics.

Routing evaluates a trigger's ``when`` and renders its dedup key for every ingested event;
through Jinja2 each call builds a template context and runs generated code, which is most
of the cost of ``event.alert_id``. This module turns an expression made only of

- names, ``.attr`` and ``["key"]``/``[index]`` lookups,
- constants, list and tuple literals,
- one comparison (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``),
- ``and``, ``or``, ``not``

into a plain Python function over the context. Jinja2 compiles every one of these to the
same Python operator, except lookups, which go through the sandbox's ``getattr`` and
``getitem``; the plan handles only the lookups whose outcome is certain — a key present in
a plain ``dict`` that is not also a ``dict`` attribute, an index inside a ``list`` — and
answers :class:`Unplanned` for anything else (a missing key, a string's method, the
``secrets`` object, an operator raising), so the caller evaluates the expression through
Jinja2 as before, with the same result or the same error. Anything the plan cannot
express (filters, tests, calls, arithmetic, templates) gets no plan at all.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.parser import Parser

__all__ = ["Plan", "Unplanned", "plan_expression"]

Plan = Callable[[Mapping[str, object]], object]
"""Evaluates an expression over a context; raises :class:`Unplanned` when it cannot."""


class Unplanned(Exception):
    """The plan cannot tell this context's outcome: evaluate through Jinja2 instead."""


_COMPARISONS: Final[dict[str, Callable[[Any, Any], object]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
    "in": lambda a, b: operator.contains(b, a),
    "notin": lambda a, b: not operator.contains(b, a),
}


def plan_expression(environment: Environment, source: str) -> Plan | None:
    """A plan for ``source`` parsed as ``environment.compile_expression`` parses it, or
    None when the expression uses anything beyond the subset above (or does not parse)."""
    try:
        parser = Parser(environment, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            return None
    except TemplateSyntaxError:
        return None
    return _plan(expression)


# Names Jinja2's generated code may bind itself rather than read from the context.
_TEMPLATE_NAMES: Final = frozenset({"self", "loop", "caller", "varargs", "kwargs", "super"})


def _plan(node: nodes.Node) -> Plan | None:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return _name(node.name)
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda _: value
    if isinstance(node, nodes.Getattr) and node.ctx == "load":
        return _attribute(node)
    if isinstance(node, nodes.Getitem) and node.ctx == "load":
        return _item(node)
    if isinstance(node, nodes.List | nodes.Tuple):
        return _sequence(node)
    if isinstance(node, nodes.Compare):
        return _compare(node)
    if isinstance(node, nodes.And | nodes.Or):
        return _boolean(node)
    if isinstance(node, nodes.Not):
        inner = _plan(node.node)
        return None if inner is None else (lambda context: not inner(context))
    return None


def _name(name: str) -> Plan | None:
    if name in _TEMPLATE_NAMES:
        return None

    def load(context: Mapping[str, object]) -> object:
        try:
            return context[name]
        except KeyError:
            raise Unplanned(name) from None

    return load


def _attribute(node: nodes.Getattr) -> Plan | None:
    inner = _plan(node.node)
    key = node.attr
    # The sandbox's getattr tries the attribute first: `event.items` is dict.items.
    if inner is None or hasattr(dict, key):
        return None
    return _lookup(inner, key, lambda value: type(value) is dict and key in value)


def _item(node: nodes.Getitem) -> Plan | None:
    inner = _plan(node.node)
    if inner is None or not isinstance(node.arg, nodes.Const):
        return None
    key = node.arg.value
    if type(key) is str:
        return _lookup(inner, key, lambda value: type(value) is dict and key in value)
    if type(key) is int:
        return _lookup(
            inner, key, lambda value: type(value) is list and -len(value) <= key < len(value)
        )
    return None


def _lookup(inner: Plan, key: str | int, certain: Callable[[Any], bool]) -> Plan:
    """``inner[key]`` where ``certain`` says the sandbox would read exactly that."""

    def load(context: Mapping[str, object]) -> object:
        value: Any = inner(context)
        if certain(value):
            return value[key]
        raise Unplanned(str(key))

    return load


def _sequence(node: nodes.List | nodes.Tuple) -> Plan | None:
    items = [_plan(item) for item in node.items]
    planned = [item for item in items if item is not None]
    if len(planned) != len(items):
        return None
    if isinstance(node, nodes.Tuple):
        return lambda context: tuple(item(context) for item in planned)
    return lambda context: [item(context) for item in planned]


def _compare(node: nodes.Compare) -> Plan | None:
    if len(node.ops) != 1 or node.ops[0].op not in _COMPARISONS:
        return None  # chained comparisons are left to Jinja2
    left, right = _plan(node.expr), _plan(node.ops[0].expr)
    if left is None or right is None:
        return None
    compare = _COMPARISONS[node.ops[0].op]

    def evaluate(context: Mapping[str, object]) -> object:
        a, b = left(context), right(context)
        try:
            return compare(a, b)
        except Exception as exc:  # Jinja2 raises the same; let it word the error
            raise Unplanned(str(exc)) from exc

    return evaluate


def _boolean(node: nodes.And | nodes.Or) -> Plan | None:
    left, right = _plan(node.left), _plan(node.right)
    if left is None or right is None:
        return None
    if isinstance(node, nodes.And):
        return lambda context: left(context) and right(context)
    return lambda context: left(context) or right(context)
