"""The ``transform`` action: pure data shaping with the story expression language.

Input: ``data`` (any JSON, usually a template such as ``"{{ steps.enrich.output.body }}"``
that the scheduler renders) and either ``map`` (output field → expression) or
``expression`` (one expression whose value is the output). Expressions are written
without braces, so the scheduler leaves them alone, and read only ``data``:

    with:
      data: "{{ steps.reputation.output.body }}"
      map:
        malicious: data.positives > 3
        engines: data.scans | dictsort | map(attribute=0) | list

No I/O happens: the same input always gives the same output.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from baton_common.expressions import ExpressionError, evaluate_value
from baton_common.records import StepTask
from baton_executor.actions.http import describe
from baton_executor.errors import PermanentError

__all__ = ["TransformAction", "TransformInput"]


class TransformInput(BaseModel):
    """The validated input of a ``transform`` step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: JsonValue = None
    map: dict[str, str] | None = Field(default=None, description="output field → expression")
    expression: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> TransformInput:
        if (self.map is None) == (self.expression is None):
            raise ValueError("give exactly one of `map` or `expression`")
        return self


class TransformAction:
    """Evaluates expressions over ``data``; an expression error fails permanently."""

    async def __call__(self, task: StepTask) -> JsonValue:
        try:
            spec = TransformInput.model_validate(task.input)
        except ValidationError as exc:
            raise PermanentError(
                f"invalid input: {describe(exc)}", error_type="InvalidInput"
            ) from None
        context: dict[str, JsonValue] = {"data": spec.data}
        try:
            if spec.expression is not None:
                return evaluate_value(spec.expression, context)
            assert spec.map is not None
            return {name: evaluate_value(source, context) for name, source in spec.map.items()}
        except ExpressionError as exc:
            raise PermanentError(str(exc), error_type="ExpressionError") from None
