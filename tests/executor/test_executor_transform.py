"""The ``transform`` action: expressions over ``data``, no I/O."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from baton_executor.actions.transform import TransformAction
from baton_executor.errors import PermanentError

from .tasks import step_task

REPUTATION: JsonValue = {
    "positives": 5,
    "scans": {"engine_b": {"hit": True}, "engine_a": {"hit": False}},
    "tags": ["phish", "kit"],
}


async def test_a_map_shapes_the_data() -> None:
    output = await TransformAction()(
        step_task(
            {
                "data": REPUTATION,
                "map": {
                    "malicious": "data.positives > 3",
                    "engines": "data.scans | dictsort | map(attribute=0) | list",
                    "summary": "'%d hits: %s' | format(data.positives, data.tags | join(', '))",
                },
            },
            action="transform",
        )
    )

    assert output == {
        "malicious": True,
        "engines": ["engine_a", "engine_b"],
        "summary": "5 hits: phish, kit",
    }


async def test_one_expression_is_the_whole_output() -> None:
    output = await TransformAction()(
        step_task({"data": REPUTATION, "expression": "data.tags | length"}, action="transform")
    )

    assert output == 2


@pytest.mark.parametrize(
    ("input", "error_type"),
    [
        ({"data": 1}, "InvalidInput"),
        ({"data": 1, "map": {}, "expression": "data"}, "InvalidInput"),
        ({"data": {}, "expression": "data.missing.field"}, "ExpressionError"),
        ({"data": {}, "expression": "data.__class__"}, "ExpressionError"),
        ({"data": {}, "expression": "event"}, "ExpressionError"),
    ],
)
async def test_bad_input_and_expressions_fail_permanently(
    input: dict[str, JsonValue], error_type: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        await TransformAction()(step_task(input, action="transform"))

    assert raised.value.error_type == error_type
