"""Committable offsets when records of a partition finish out of order."""

from __future__ import annotations

from baton_executor.offsets import OffsetTracker


def test_nothing_is_committable_until_the_oldest_record_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    first = tracker.start("p0", 10)
    second = tracker.start("p0", 11)

    tracker.finish(second)
    assert tracker.uncommitted() == {}

    tracker.finish(first)
    assert tracker.uncommitted() == {"p0": 12}


def test_a_commit_is_offered_once_per_advance() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.finish(tracker.start("p0", 0))
    offsets = tracker.uncommitted()
    tracker.committed(offsets)

    assert tracker.uncommitted() == {}
    tracker.finish(tracker.start("p0", 1))
    assert tracker.uncommitted() == {"p0": 2}


def test_an_unrecorded_commit_is_offered_again() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.finish(tracker.start("p0", 0))

    assert tracker.uncommitted() == {"p0": 1}
    assert tracker.uncommitted() == {"p0": 1}


def test_partitions_advance_independently_and_can_be_selected() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    slow = tracker.start("p0", 5)
    tracker.finish(tracker.start("p1", 7))

    assert tracker.uncommitted() == {"p1": 8}
    assert tracker.uncommitted(["p0"]) == {}
    assert tracker.running("p0") == 1
    tracker.finish(slow)
    assert tracker.uncommitted(["p0"]) == {"p0": 6}


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    old = tracker.start("p0", 3)
    tracker.forget(["p0"])
    tracker.finish(old)

    assert tracker.uncommitted() == {}
    fresh = tracker.start("p0", 3)  # reassigned, redelivered
    assert tracker.uncommitted() == {}
    tracker.finish(fresh)
    assert tracker.uncommitted() == {"p0": 4}
