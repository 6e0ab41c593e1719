"""Snapshot chunks put together from states' JSON are the records the general codec
writes for the same chunk (ADR 0150)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from baton_common.kafka import outbound, to_envelope
from baton_common.state import RunState, RunStatus
from baton_scheduler.snapshot import SnapshotChunk, snapshot_records, state_json

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def state(n: int, **changes: object) -> RunState:
    return RunState.model_validate(
        {
            "run_id": f"run-{n}",
            "story_id": "s",
            "story_version": 1,
            "trigger": {"n": n, "text": "é"},
            "steps": {},
            "started_at": T,
            **changes,
        }
    )


def records(states: list[RunState | bytes]) -> list[tuple[bytes | None, object]]:
    out = snapshot_records(
        snapshot_topic="snap",
        runs_topic="runs",
        partition=3,
        runs_offset=42,
        states=states,
        snapshot_id="runs:3:42",
        time=T,
    )
    return [(r.value, r.headers) for r in out]


def test_chunks_from_json_match_the_general_codec() -> None:
    statuses = [RunStatus.RUNNING, RunStatus.SUCCEEDED]
    states = [state(n, status=statuses[n % 2]) for n in range(5)]
    # a float orjson writes otherwise than the standard library (0.00001, not 1e-05)
    states.append(state(5, trigger={"score": 1e-05}))
    chunk = SnapshotChunk(snapshot_id="runs:3:42", index=0, states=states)
    envelope = to_envelope(chunk, id="runs:3:42:0", source="baton/scheduler/snapshots", time=T)
    reference = outbound("snap", "runs:3:chunk:0", envelope, partition=0)
    from_states = records(list(states))
    assert from_states[0] == (reference.value, reference.headers)
    assert records([state_json(s) for s in states]) == from_states
    assert SnapshotChunk.model_validate_json(from_states[0][0] or b"").states == states


def test_a_state_orjson_cannot_write_still_round_trips() -> None:
    odd = state(1, trigger={"x": math.inf, "big": 2**70})
    value = records([odd])[0][0]
    assert value is not None
    assert SnapshotChunk.model_validate_json(value).states[0].trigger == {
        "x": math.inf,
        "big": 2**70,
    }
