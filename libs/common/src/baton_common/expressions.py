"""The story expression language: Jinja2 expressions evaluated in its immutable sandbox.

Templates (``"https://x/{{ event.url }}"``) and conditions
(``event.severity in ["high", "critical"]``) share one evaluator. The sandbox refuses
attribute access to underscored names and to Python internals, and the context holds
only JSON data, so story text can read data and nothing else (see ADR 0004).

Secrets are never rendered by the scheduler: ``render_value`` turns a reference such as
``secrets.API_TOKEN`` into the placeholder text ``{{ secrets.API_TOKEN }}``, which is what
the event log keeps. Only the executor swaps placeholders for values
(``resolve_secrets``), so no secret value ever enters a record (see ADR 0300).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from jinja2 import StrictUndefined, Template, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import JsonValue

from baton_common.expression_plans import Plan, Unplanned, plan_expression

__all__ = [
    "SECRET_PLACEHOLDER",
    "ExpressionError",
    "evaluate_condition",
    "evaluate_value",
    "render_value",
    "resolve_secrets",
    "secret_names",
]

_SINGLE: Final = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
SECRET_PLACEHOLDER: Final = re.compile(r"\{\{ secrets\.(?P<name>[A-Za-z][A-Za-z0-9_]*) \}\}")
"""The text a ``secrets.NAME`` reference renders to, and that the executor resolves."""
_SECRET_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ExpressionError(ValueError):
    """An expression failed to compile or evaluate; the message says why."""


# compile_expression returns the expression's Python value, so `{{ steps.x.output }}`
# stays a dict; plain text templates render through the same sandbox.
def _defuse(text: str) -> str:
    """Data (an alert's text) that spells a secret placeholder must not become one: the
    executor would resolve it and send the secret wherever the data goes."""
    return SECRET_PLACEHOLDER.sub(lambda m: "{ {" + m.group(0)[2:], text)


def _finalize(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, _SecretRef):
        return _defuse(value)
    return value


_ENV: Final = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, finalize=_finalize
)
_ENV.globals.clear()  # no range/lipsum/cycler: expressions see only their data


class _SecretRef(str):
    """A ``secrets.NAME`` reference: renders as its own placeholder, never as a value."""

    __slots__ = ()


class _Secrets:
    """The ``secrets`` name templates see: any valid name yields its placeholder."""

    def _ref(self, name: str) -> _SecretRef:
        if not _SECRET_NAME.match(name):
            raise ExpressionError(
                f"secret name {name!r}: start with a letter; use letters, digits and _"
            )
        return _SecretRef(f"{{{{ secrets.{name} }}}}")

    def __getattr__(self, name: str) -> _SecretRef:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._ref(name)

    def __getitem__(self, name: str) -> _SecretRef:
        return self._ref(name)


_SECRETS: Final = _Secrets()


def _with_secrets(context: Mapping[str, JsonValue]) -> dict[str, object]:
    return {"secrets": _SECRETS, **context}


@lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _planned_expression(source: str) -> Plan | None:
    """A plain-Python plan for the simplest expressions (``event.alert_id``), same
    semantics as the sandbox (see ``expression_plans``); None for the others."""
    return plan_expression(_ENV, source)


@lru_cache(maxsize=4096)
def _compiled_template(source: str) -> Template:
    """A text template, compiled once: stories repeat the same few templates for every
    run. A compile error is not cached (``lru_cache`` keeps only results)."""
    return _ENV.from_string(source)


_OUTPUT: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_Planned = tuple[tuple[str, ...], tuple[Plan, ...]]


@lru_cache(maxsize=4096)
def _planned_template(source: str) -> _Planned | None:
    """A text template made only of text and ``{{ expr }}`` outputs whose expressions
    all have plans (``http://x/{{ event.n }}``), as its texts and plans; None for any
    other (blocks, comments, whitespace control, a trailing newline Jinja2 would drop,
    an expression without a plan).

    Jinja2 renders such a template as the texts with ``str(finalize(value))`` of each
    output between them; :func:`_render_planned` does the same without building a
    template context and running generated code.
    """
    if "{%" in source or "{#" in source or source.endswith("\n"):
        return None
    texts: list[str] = []
    plans: list[Plan] = []
    position = 0
    for match in _OUTPUT.finditer(source):
        expression = match.group(1)
        if expression[:1] in "-+" or expression[-1:] in "-+":
            return None  # whitespace control, or an expression Jinja2 reads otherwise
        plan = _planned_expression(expression.strip())
        if plan is None:
            return None
        texts.append(source[position : match.start()])
        plans.append(plan)
        position = match.end()
    texts.append(source[position:])
    if any("{{" in text or "}}" in text for text in texts):
        return None
    return tuple(texts), tuple(plans)


def _render_planned(planned: _Planned, context: Mapping[str, object]) -> str:
    """Render a template :func:`_planned_template` split; raises :class:`Unplanned` as
    the plans do."""
    texts, plans = planned
    parts = [texts[0]]
    for plan, text in zip(plans, texts[1:], strict=True):
        parts.append(str(_finalize(plan(context))))
        parts.append(text)
    return "".join(parts)


def evaluate_condition(source: str, context: Mapping[str, JsonValue]) -> bool:
    """Evaluate a condition such as ``event.severity == "high"`` to a bool.

    Raises:
        ExpressionError: if the expression is invalid or reads missing data.
    """
    return bool(_evaluate(source, context))


def evaluate_value(source: str, context: Mapping[str, JsonValue]) -> JsonValue:
    """Evaluate an expression such as ``data.hits | length`` to a JSON value.

    Raises:
        ExpressionError: if the expression is invalid, reads missing data, or yields
            something that is not JSON.
    """
    return _to_json(_evaluate(source, context), source)


def render_value(value: JsonValue, context: Mapping[str, JsonValue]) -> JsonValue:
    """Render every ``{{ … }}`` template inside a JSON value.

    A string that is exactly one ``{{ expr }}`` keeps the expression's JSON type;
    any other string with templates renders to text. A ``secrets.NAME`` reference
    renders to the placeholder ``{{ secrets.NAME }}`` (see :func:`resolve_secrets`).

    Raises:
        ExpressionError: if a template is invalid or reads missing data.
    """
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        match = _SINGLE.match(value)
        # "{{ a }}/{{ b }}" also starts with {{ and ends with }}: that is text, not one expression
        if match is not None and "{{" not in match.group("expr"):
            return _to_json(_evaluate(match.group("expr"), _with_secrets(context)), value)
        planned = _planned_template(value)
        if planned is not None:
            try:
                return _render_planned(planned, _with_secrets(context))
            except Unplanned:
                pass  # Jinja2 decides, and words any error
        try:
            return _compiled_template(value).render(_with_secrets(context))
        except TemplateError as exc:
            raise ExpressionError(f"template {value!r}: {exc}") from exc
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    return value


def secret_names(value: JsonValue) -> set[str]:
    """The names of the secret placeholders inside a rendered JSON value."""
    if isinstance(value, str):
        return {m.group("name") for m in SECRET_PLACEHOLDER.finditer(value)}
    if isinstance(value, list):
        return set().union(*(secret_names(item) for item in value))
    if isinstance(value, dict):
        return set().union(*(secret_names(item) for item in value.values()))
    return set()


def resolve_secrets(value: JsonValue, lookup: Callable[[str], str]) -> JsonValue:
    """Replace every ``{{ secrets.NAME }}`` placeholder with ``lookup(NAME)``.

    Only the executor calls this, right before an action uses its input; the
    resolved value must never be written to a record (redact outputs and errors).

    Raises:
        whatever ``lookup`` raises for an unknown name.
    """
    if isinstance(value, str):
        if "{{ secrets." not in value:
            return value
        return SECRET_PLACEHOLDER.sub(lambda m: lookup(m.group("name")), value)
    if isinstance(value, list):
        return [resolve_secrets(item, lookup) for item in value]
    if isinstance(value, dict):
        return {key: resolve_secrets(item, lookup) for key, item in value.items()}
    return value


def _evaluate(source: str, context: Mapping[str, object]) -> object:
    plan = _planned_expression(source.strip())
    if plan is not None:
        try:
            return plan(context)
        except Unplanned:
            pass  # Jinja2 decides, and words any error
    try:
        result = _compiled_expression(source.strip())(**context)
        if isinstance(result, Undefined):
            str(result)  # StrictUndefined raises the reason (missing key, unsafe attribute)
        return result
    except TemplateError as exc:
        raise ExpressionError(f"expression {source.strip()!r}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"expression {source.strip()!r}: {exc}") from exc


def _to_json(result: object, source: str) -> JsonValue:
    if isinstance(result, _SecretRef):
        return str.__str__(result)
    if isinstance(result, str):
        return _defuse(result)
    if result is None or isinstance(result, int | float | bool):
        return result
    if isinstance(result, list | tuple):
        return [_to_json(item, source) for item in result]
    if isinstance(result, Mapping):
        return {_defuse(str(k)): _to_json(v, source) for k, v in result.items()}
    raise ExpressionError(f"template {source!r} produced a non-JSON value")
