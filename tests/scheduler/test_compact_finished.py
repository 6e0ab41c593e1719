"""Finished runs are kept compact in memory; late commands still get the exact answer."""

from __future__ import annotations

from datetime import timedelta

from scheduler_log import PARTITIONS, RUN, T0, Log

from baton_common.commands import CancelRun, Command, CompleteStep, StartRun
from baton_common.envelope import Envelope
from baton_common.settings import TopicSettings
from baton_common.state import RunState, RunStatus
from baton_common.story import parse_story
from baton_scheduler.decide import Context, decide
from baton_scheduler.journal import Entry, journal
from baton_scheduler.snapshot import state_json
from baton_scheduler.store import RunStore, compact

STORY = parse_story(
    "id: short\nversion: 1\ntrigger: {webhook: {path: s}}\n"
    "steps:\n  one: {action: http, with: {url: 'http://x/{{ event.n }}'}}\n"
)


def finished() -> Log:
    log = Log(STORY)
    log.send(
        StartRun(
            run_id=RUN,
            story_id="short",
            trigger={"n": 1},
            dedup_key="k",
            dedup_window_seconds=600,
            ingest_id="in-1",
        )
    )
    log.send(CompleteStep(run_id=RUN, step="one", attempt_id=log.attempt("one"), output=[1] * 50))
    assert log.run.status is RunStatus.SUCCEEDED
    return log


def answer(state: RunState, command: Command, at_minutes: int = 1) -> Entry:
    at = T0 + timedelta(minutes=at_minutes)
    envelope = Envelope(
        id="late-1", type=command.type, source="t", time=at, data=command.model_dump(mode="json")
    )
    decision = decide(state, command, STORY, Context(at, envelope.id, PARTITIONS, None))
    return journal({state.run_id: state}, decision.events, envelope, at, TopicSettings())


def test_compact_keeps_what_late_commands_and_dedup_read() -> None:
    full = finished().run
    small = compact(full)
    assert (small.steps, small.trigger, small.timers, small.succeeded) == ({}, {}, {}, [])
    kept = ("run_id", "status", "seq", "last_hash", "dedup_key", "dedup_until", "ingest_id")
    assert all(getattr(small, f) == getattr(full, f) for f in kept)
    assert len(small.model_dump_json()) < len(full.model_dump_json())
    assert compact(small) is small


def test_a_running_run_is_not_compacted() -> None:
    log = Log(STORY)
    log.send(StartRun(run_id=RUN, story_id="short", trigger={"n": 1}))
    assert compact(log.run) is log.run
    store = RunStore()
    store.apply({RUN: (0, log.run)})
    assert store.get(RUN) == log.run


def test_late_commands_get_the_same_records_from_a_compact_run() -> None:
    full = finished().run
    store = RunStore()
    store.apply({RUN: (2, full)})
    small = store.get(RUN)
    assert small is not None
    assert small.steps == {}
    late: list[Command] = [
        CompleteStep(run_id=RUN, step="one", attempt_id=full.steps["one"].attempt_id or ""),
        CancelRun(run_id=RUN, reason="x", requested_by="ops"),
        StartRun(run_id=RUN, story_id="short", trigger={"n": 2}, dedup_key="k"),  # in window
    ]
    for command in late:
        from_full, from_small = answer(full, command), answer(small, command)
        assert from_full.events == from_small.events
        assert from_full.tasks == from_small.tasks
        assert compact(from_full.states[RUN]) == from_small.states[RUN]
    rejected = answer(small, late[0]).events[0]
    assert rejected.type == "baton.command.rejected.v1"
    assert rejected.data["reason"] == "run is succeeded"
    assert rejected.prevhash == full.last_hash


def test_after_the_window_a_compact_slot_starts_a_new_generation() -> None:
    full = finished().run
    command = StartRun(run_id=RUN, story_id="short", trigger={"n": 3}, dedup_key="k")
    from_full = answer(full, command, at_minutes=20)
    from_small = answer(compact(full), command, at_minutes=20)
    assert [e.type for e in from_small.events] == [e.type for e in from_full.events]
    assert from_small.events == from_full.events
    assert [e.type for e in from_small.events] == [
        "baton.dedup.advanced.v1",
        "baton.run.started.v1",
        "baton.step.dispatched.v1",
    ]


def test_a_finished_run_is_kept_as_its_snapshot_json() -> None:
    full = finished().run
    store = RunStore()
    store.apply({RUN: (2, full)})
    assert store.running() == []
    assert store.of_partition(2) == {RUN: state_json(compact(full))}
    assert store.of_partition(1) == {}
    assert store.get(RUN) == compact(full)
    assert len(store) == 1
    assert store.drop_partitions([2]) == 1
    assert store.get(RUN) is None
