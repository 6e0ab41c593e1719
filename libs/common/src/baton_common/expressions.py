"""The story expression language: Jinja2 expressions evaluated in its immutable sandbox.

Templates (``"https://x/{{ event.url }}"``) and conditions
(``event.severity in ["high", "critical"]``) share one evaluator. The sandbox refuses
attribute access to underscored names and to Python internals, and the context holds
only JSON data, so story text can read data and nothing else (see ADR 0004).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import JsonValue

__all__ = ["ExpressionError", "evaluate_condition", "render_value"]

_SINGLE: Final = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """An expression failed to compile or evaluate; the message says why."""


# compile_expression returns the expression's Python value, so `{{ steps.x.output }}`
# stays a dict; plain text templates render through the same sandbox.
_ENV: Final = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.globals.clear()  # no range/lipsum/cycler: expressions see only their data


@lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def evaluate_condition(source: str, context: Mapping[str, JsonValue]) -> bool:
    """Evaluate a condition such as ``event.severity == "high"`` to a bool.

    Raises:
        ExpressionError: if the expression is invalid or reads missing data.
    """
    return bool(_evaluate(source, context))


def render_value(value: JsonValue, context: Mapping[str, JsonValue]) -> JsonValue:
    """Render every ``{{ … }}`` template inside a JSON value.

    A string that is exactly one ``{{ expr }}`` keeps the expression's JSON type;
    any other string with templates renders to text.

    Raises:
        ExpressionError: if a template is invalid or reads missing data.
    """
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        if match := _SINGLE.match(value):
            return _to_json(_evaluate(match.group("expr"), context), value)
        try:
            return _ENV.from_string(value).render(dict(context))
        except TemplateError as exc:
            raise ExpressionError(f"template {value!r}: {exc}") from exc
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    return value


def _evaluate(source: str, context: Mapping[str, JsonValue]) -> object:
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
    if result is None or isinstance(result, str | int | float | bool):
        return result
    if isinstance(result, list | tuple):
        return [_to_json(item, source) for item in result]
    if isinstance(result, Mapping):
        return {str(k): _to_json(v, source) for k, v in result.items()}
    raise ExpressionError(f"template {source!r} produced a non-JSON value")
