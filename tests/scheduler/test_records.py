"""The journal's drafts are ``to_envelope`` without validation, and encode as it does."""

from __future__ import annotations

from typing import Any

from envelope_cases import T

from baton_common.envelope import encode_record
from baton_common.kafka import to_envelope
from baton_common.outbound_records import encoded
from baton_common.records import StepTask
from baton_scheduler.journal import _draft


def test_journal_drafts_are_to_envelope_without_validation() -> None:
    task = StepTask(
        run_id="r",
        story_id="s",
        story_version=2,
        step="a",
        attempt=1,
        attempt_id="x",
        action="http",
        input={"url": "http://x", "n": [1, None]},
    )
    attributes: dict[str, Any] = {
        "subject": "r",
        "storyid": "s",
        "storyversion": 2,
        "causationid": "c",
        "correlationid": "r",
        "actor": None,
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "seq": 3,
        "prevhash": "0" * 64,
    }
    draft = _draft(task, id="e1", source="baton/scheduler", time=T, **attributes)
    expected = to_envelope(task, id="e1", source="baton/scheduler", time=T, **attributes)
    assert draft == expected
    assert draft.model_fields_set == expected.model_fields_set
    assert encoded(draft) == encode_record(expected)
