"""Exact dedup: inside the window a duplicate points at the run; after it, a new run starts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from scheduler_log import PARTITIONS, RUN, T0, TRIGGER, Log

from baton_common import ids
from baton_common.commands import CompleteStep, StartRun
from baton_common.hashing import verify_chain
from baton_common.state import RunStatus, replay

HOUR = timedelta(hours=1)


def again(ingest_id: str | None = None) -> StartRun:
    return StartRun(
        run_id=RUN,
        story_id="hello-approval",
        trigger=TRIGGER,
        dedup_key="A-1",
        dedup_window_seconds=3600,
        ingest_id=ingest_id,
    )


def test_a_duplicate_inside_the_window_points_at_the_run() -> None:
    log = Log()
    log.send(again("i-1"))
    assert log.send(again("i-2"), at=T0 + 59 * timedelta(minutes=1)) == ["run.deduplicated"]
    event = log.envelopes[-1]
    assert (event.subject, event.data["duplicate_command_id"]) == (RUN, "cmd-2")


def test_after_the_window_a_new_run_starts_on_the_same_partition() -> None:
    log = Log()
    log.send(again("i-1"))
    out = log.send(again("i-2"), at=T0 + 2 * HOUR)
    assert out == ["dedup.advanced", "run.started", "step.dispatched"]
    second = ids.generation_run_id(RUN, 1, PARTITIONS)
    assert second != RUN
    assert ids.partition_for(second, PARTITIONS) == ids.partition_for(RUN, PARTITIONS)
    advanced, started, dispatched = log.envelopes[-3:]
    assert (advanced.subject, advanced.data["current"], advanced.data["generation"]) == (
        RUN,
        second,
        1,
    )
    assert (started.subject, started.data["dedup_slot"]) == (second, RUN)
    assert dispatched.subject == second
    assert [t.key for t in log.last_tasks] == [second]  # tasks keyed by the new run
    assert log.runs[RUN].dedup_current == second
    new = log.runs[second]
    assert (new.status, new.dedup_slot, new.ingest_id) == (RunStatus.RUNNING, RUN, "i-2")
    # the new run is a run like any other, with its own chain from seq 1
    log.run_id = second
    log.send(
        CompleteStep(run_id=second, step="lookup", attempt_id=log.attempt("lookup")),
        at=T0 + 2 * HOUR,
    )
    assert verify_chain(log.of(second)) is None
    assert verify_chain(log.of(RUN)) is None
    assert replay(log.of(second)) == log.runs[second]
    assert replay(log.of(RUN)) == log.runs[RUN]


def test_later_duplicates_go_to_the_newest_run_and_generations_continue() -> None:
    log = Log()
    log.send(again())
    log.send(again(), at=T0 + 2 * HOUR)
    second = ids.generation_run_id(RUN, 1, PARTITIONS)
    assert log.send(again(), at=T0 + 2.5 * HOUR) == ["run.deduplicated"]
    assert log.envelopes[-1].subject == second
    assert log.send(again(), at=T0 + 4 * HOUR)[:2] == ["dedup.advanced", "run.started"]
    third = ids.generation_run_id(RUN, 2, PARTITIONS)
    assert len({RUN, second, third}) == 3
    assert log.runs[RUN].dedup_generation == 2
    assert log.envelopes[-2].subject == third  # run.started of the third run


def test_a_redelivered_intake_record_never_starts_a_second_run() -> None:
    log = Log()
    log.send(again("i-1"))
    assert log.send(again("i-1"), at=T0 + 5 * HOUR) == ["run.deduplicated"]
    assert log.envelopes[-1].subject == RUN


def test_a_start_without_dedup_key_for_an_existing_run_is_rejected() -> None:
    log = Log()
    log.send(again())
    plain = StartRun(run_id=RUN, story_id="hello-approval", trigger=TRIGGER)
    assert log.send(plain, at=T0 + 5 * HOUR) == ["command.rejected"]
    assert "already exists" in str(log.envelopes[-1].data["reason"])


@pytest.mark.parametrize("partitions", [1, 3, 6, 12, 64])
def test_generation_ids_are_deterministic_and_stay_on_the_slot_partition(partitions: int) -> None:
    for n in range(20):
        slot = ids.run_id_for("story", f"key-{n}")
        generations = [ids.generation_run_id(slot, g, partitions) for g in range(1, 5)]
        assert generations == [ids.generation_run_id(slot, g, partitions) for g in range(1, 5)]
        assert len(set(generations)) == 4
        assert {ids.partition_for(g, partitions) for g in generations} == {
            ids.partition_for(slot, partitions)
        }
