"""Models built from trusted values are the models validation builds."""

from __future__ import annotations

import pytest

from baton_common.commands import StartRun
from baton_common.records import EventReceived
from baton_common.trusted import trusted


def test_a_trusted_model_equals_the_validated_one() -> None:
    values = {
        "run_id": "r-1",
        "story_id": "s",
        "story_version": 3,
        "trigger": {"a": [1, 2.5, None, {"b": "c"}]},
        "dedup_key": "k",
        "ingest_id": "i",
    }
    made, validated = trusted(StartRun, **values), StartRun(**values)  # type: ignore[arg-type]
    assert made == validated
    assert made.model_fields_set == validated.model_fields_set
    assert made.model_dump(mode="json") == validated.model_dump(mode="json")
    assert made.model_dump_json() == validated.model_dump_json()
    event = trusted(EventReceived, path="p", body={"x": 1})
    assert event == EventReceived(path="p", body={"x": 1})


def test_missing_and_unknown_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="run_id"):
        trusted(StartRun, story_id="s", trigger={})
    with pytest.raises(TypeError, match="colour"):
        trusted(EventReceived, body={}, colour="red")
