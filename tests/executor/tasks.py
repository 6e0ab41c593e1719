"""Step tasks used by the executor tests."""

from __future__ import annotations

from pydantic import JsonValue

from baton_common import ids
from baton_common.records import StepTask

RUN_ID = "5b2f5a53-59c4-5e0d-9f0f-3f8c1f1f0a01"


def step_task(
    input: dict[str, JsonValue] | None = None,
    *,
    action: str = "http",
    step: str = "lookup",
    attempt: int = 1,
    run_id: str = RUN_ID,
) -> StepTask:
    return StepTask(
        run_id=run_id,
        story_id="phishing-triage",
        story_version=4,
        step=step,
        attempt=attempt,
        attempt_id=ids.attempt_id(run_id, step, attempt),
        action=action,
        input=input if input is not None else {"url": "https://rep.example/check"},
    )
