"""Run states written as pydantic serializes them (ADR 0550) are the documents
``model_dump`` gave, and a NaN or infinity is still refused by PostgreSQL.

A state folded only from payloads orjson parsed (or read back and checked) holds no NaN
or infinity, so the writer passes pydantic's JSON on without the codec's check.
"""

from __future__ import annotations

import math
from datetime import timedelta

import orjson
import pytest
from asyncpg.exceptions import DataError
from pydantic import JsonValue

from baton_audit.admin import checksum
from baton_audit.db import Pool, encode_jsonb, load_migrations
from baton_audit.run_rows import RunRows
from baton_audit.set_writes import _state
from baton_audit.writer import AuditWriter
from baton_common.events import RunStarted, StepSucceeded, TimerScheduled
from baton_common.kafka import ConsumedRecord
from baton_common.state import RunState, replay
from baton_common.testing import Record

from .conftest import PoolFactory
from .fakes import (
    KEPT_RUNS,
    STORIES_TOPIC,
    STORY,
    T0,
    TOPIC,
    approved_run,
    chain,
    projector_on,
    records,
    triage_run,
)

pytestmark = pytest.mark.integration


def states() -> list[RunState]:
    found: list[RunState] = []
    odd_output: dict[str, JsonValue] = {
        "floats": [0.1, 1e16, 1e-7, 1.5e300, 5e-324, -0.0, 2.0**53, 123.456],
        "ints": [0, -1, 2**63 - 1, -(2**63)],
        "text": '\u00e9\u4e2d\U0001f600 "quoted" \\ \n\t\u0001',
        "nested": {"a": [None, True, False, {}], "": []},
    }
    for log in (approved_run("a1"), triage_run("t1")):
        for n in range(1, len(log) + 1):
            state = replay(log[:n])
            assert state is not None
            found.append(state)
    run = approved_run("a2")[:2]
    odd = chain(
        "a2",
        [
            StepSucceeded(
                run_id="a2", step="verdict", attempt=1, attempt_id="att-1", output=odd_output
            ),
            TimerScheduled(
                run_id="a2",
                timer_id="tm",
                kind="step_timeout",
                step="verdict",
                attempt=1,
                fire_at=T0 + timedelta(microseconds=1),
            ),
            TimerScheduled(run_id="a2", timer_id="run", kind="run_timeout", fire_at=T0),
        ],
        first_seq=3,
    )
    state = replay([*run, *odd])
    assert state is not None
    found.append(state)
    nulls = RunStarted(
        run_id="n1",
        story_id=STORY,
        story_version=1,
        trigger={"a": None, "b": {"c": None}, "d": [None], "e": ""},
        dedup_key="k",
    )
    state = replay(chain("n1", [nulls]))
    assert state is not None
    found.append(state)
    return found


async def test_a_state_stored_without_its_none_fields_reads_back_the_same(pool: Pool) -> None:
    # Stored as the writer stored it after 0550, and as it stored it before, then rewritten
    # by migration 0550's statement: all three read back as the same state (jsonb's own
    # reading of some floats, e.g. 1.5e300 as an integer, is the same for all three); and
    # the json text written since 0560, read as jsonb (as the checksum reads it), is the
    # same document, so an upgraded store and its rebuild give one checksum.
    rewrite = next(m for m in load_migrations() if m.version == 550).sql
    serializer = RunState.__pydantic_serializer__
    insert = (
        "insert into runs (run_id, status, event_count, updated_at, state)"
        " values ($1, 'running', 1, now(), $2)"
    )
    read = "select state, state::text as text from runs where run_id = $1"
    async with pool.acquire() as conn:
        await conn.execute("alter table runs alter column state type jsonb using state::jsonb")
        for n, state in enumerate(states()):
            small = serializer.to_json(state, exclude_none=True).decode()
            await conn.execute(insert.replace("$2)", "$2::text::jsonb)"), f"new{n}", small)
            await conn.execute(insert, f"old{n}", encode_jsonb(state.model_dump(mode="json")))
            before = await conn.fetchrow(read, f"old{n}")
            await conn.execute(rewrite)
            after = await conn.fetchrow(read, f"old{n}")
            now = await conn.fetchrow(read, f"new{n}")
            assert before is not None
            assert after is not None
            assert now is not None
            assert after["text"] == now["text"], state
            written = await conn.fetchval(
                "select $1::text::json::jsonb::text", _state(state, finite=True)
            )
            assert written == now["text"], state
            assert len(str(now["text"])) < len(str(before["text"]))
            states_read = [RunState.model_validate(r["state"]) for r in (before, after, now)]
            assert states_read[0] == states_read[1] == states_read[2]
            dumped = [s.model_dump(mode="json") for s in states_read]
            assert dumped[0] == dumped[1] == dumped[2]


async def test_a_serialized_state_is_the_dumped_document(pool: Pool) -> None:
    serializer = RunState.__pydantic_serializer__
    async with pool.acquire() as conn:
        for state in states():
            fast = serializer.to_json(state, exclude_none=True).decode()
            dumped = encode_jsonb(state.model_dump(mode="json", exclude_none=True))
            same = await conn.fetchrow(
                "select $1::text::jsonb = $2::jsonb as equal,"
                " $1::text::jsonb::text = $2::jsonb::text as text",
                fast,
                dumped,
            )
            assert same is not None
            assert same["equal"], state
            assert same["text"], state


async def test_a_state_holding_nan_or_infinity_is_refused_by_postgresql(pool: Pool) -> None:
    # pydantic writes NaN as null: a state not known to be finite is checked, and one that
    # holds NaN goes as the standard library spells it, which the json column refuses (the
    # projector then dead-letters the record); a finite one goes as pydantic writes it.
    finite = states()[0]
    async with pool.acquire() as conn:
        for value in (math.nan, math.inf, -math.inf):
            odd = finite.model_copy(update={"trigger": {"x": [1, value]}})
            with pytest.raises(DataError):
                await conn.fetchval("select $1::text::json", _state(odd, finite=False))
        text = await conn.fetchval("select $1::text::json::text", _state(finite, finite=False))
    assert text == _state(finite, finite=True)


def with_value(record: ConsumedRecord, old: bytes, new: bytes) -> ConsumedRecord:
    assert record.value is not None
    assert old in record.value
    value = record.value.replace(old, new)
    return Record(record.topic, record.partition, record.offset, record.key, value, record.headers)


def interleaved(runs: int) -> list[ConsumedRecord]:
    logs = [approved_run(f"a{n}", start=T0 + timedelta(minutes=n)) for n in range(runs)]
    return records([log[k] for k in range(len(logs[0])) for log in logs])


@pytest.mark.parametrize("spelling", [b"NaN", b"Infinity", b"1e999"])
async def test_a_non_finite_output_is_dead_lettered_and_nothing_else_changes(
    new_pool: PoolFactory, spelling: bytes
) -> None:
    log = interleaved(4)
    # the third event of every run is its StepSucceeded ({"confidence": 0.7, ...})
    culprit = 2 * 4 + 1
    bad = [*log]
    bad[culprit] = with_value(log[culprit], b"0.7", spelling)
    expected_pool = await new_pool()
    expected = projector_on(expected_pool)
    for start in range(0, len(log), 4):
        await expected.apply_batch(
            TOPIC, 0, [r for r in log[start : start + 4] if r.offset != culprit]
        )
    pool = await new_pool()
    projector = projector_on(pool)

    for start in range(0, len(bad), 4):
        await projector.apply_batch(TOPIC, 0, bad[start : start + 4])

    dead = projector._publisher.records  # type: ignore[attr-defined]
    assert [orjson.loads(r.value)["offset"] for r in dead] == [culprit]
    got, want = await checksum(pool), await checksum(expected_pool)
    assert got[1]["events"] == want[1]["events"] == len(log) - 1
    assert got == want


async def test_a_state_read_back_with_an_overflowing_number_is_not_taken_as_finite(
    pool: Pool,
) -> None:
    writer = AuditWriter(runs_topic=TOPIC, stories_topic=STORIES_TOPIC, kept_runs=KEPT_RUNS)
    projector = projector_on(pool, writer.apply)
    await projector.apply_batch(TOPIC, 0, records(approved_run("a1")[:2]))
    async with pool.acquire() as conn:
        # jsonb holds this number exactly; Python reads it back as an infinity
        await conn.execute(
            "update runs set state = jsonb_set("
            "state::jsonb, '{trigger,big}', ('1' || repeat('0', 400) || '.5')::jsonb)::json"
        )
        async with conn.transaction():
            locked = await RunRows(KEPT_RUNS).lock(conn, ["a1"])
            clean = await RunRows(KEPT_RUNS).lock(conn, [])
    state = locked.rows["a1"].state
    big = state.trigger["big"] if state is not None else None
    assert isinstance(big, float)
    assert math.isinf(big)
    assert locked.finite == set()
    assert clean.rows == {}


async def test_a_batch_mixing_finite_and_other_states_keeps_every_value(pool: Pool) -> None:
    # A payload with an integer beyond 64 bits is parsed by the standard library (not
    # known finite) yet stored: its run's state goes through the check while the others
    # in the same document go as serialized.
    log = interleaved(4)
    digits = b"123456789012345678901234567"
    culprit = 2 * 4 + 1
    log[culprit] = with_value(log[culprit], b"0.7", digits)
    projector = projector_on(pool)

    for start in range(0, len(log), 4):
        await projector.apply_batch(TOPIC, 0, log[start : start + 4])

    assert projector._publisher.records == []  # type: ignore[attr-defined]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select run_id, state -> 'steps' -> 'verdict' -> 'output' ->> 'confidence' as c"
            " from runs order by run_id"
        )
    assert [(r["run_id"], r["c"]) for r in rows] == [
        ("a0", "0.7"),
        ("a1", digits.decode()),
        ("a2", "0.7"),
        ("a3", "0.7"),
    ]
