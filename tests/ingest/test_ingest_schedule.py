"""Schedule ticks, catch-up policies and the schedule loop over an in-memory publisher."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from baton_common import ids
from baton_common.commands import StartRun
from baton_common.records import ScheduleCursor
from baton_common.settings import TopicSettings
from baton_common.story import Story
from baton_common.triggers import ScheduleTrigger
from baton_ingest.metrics import IngestMetrics
from baton_ingest.schedule import due_ticks, tick_key, ticks_between
from baton_ingest.ticker import Ticker, load_cursors

from .fakes import FakePublisher, record_of
from .stories import OPEN, catalog_of, story

T0 = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def schedule(**fields: object) -> ScheduleTrigger:
    return ScheduleTrigger.model_validate(fields)


def test_cron_ticks_in_a_timezone_across_a_dst_change() -> None:
    # 02:30 Paris does not exist on 2026-03-29 (clocks jump 02:00 → 03:00)
    daily = schedule(cron="30 2 * * *", timezone="Europe/Paris")
    ticks = ticks_between(daily, T0, T0 + timedelta(days=3))
    assert [t.isoformat() for t in ticks] == [
        "2026-03-29T01:00:00+00:00",
        "2026-03-30T00:30:00+00:00",
        "2026-03-31T00:30:00+00:00",
    ]


def test_ticks_exclude_the_start_and_include_the_end() -> None:
    five = schedule(cron="*/5 * * * *")
    assert ticks_between(five, T0, T0 + 10 * MIN) == [T0 + 5 * MIN, T0 + 10 * MIN]
    every = schedule(every="10m")
    assert ticks_between(every, T0, T0 + 25 * MIN) == [T0 + 10 * MIN, T0 + 20 * MIN]


def test_every_is_aligned_to_the_epoch_so_replicas_agree() -> None:
    every = schedule(every="7m")
    a = ticks_between(every, T0 + timedelta(seconds=13), T0 + 60 * MIN)
    b = ticks_between(every, T0 + timedelta(seconds=59), T0 + 60 * MIN)
    assert a[-3:] == b[-3:]
    assert all(int(t.timestamp()) % 420 == 0 for t in a)


def test_a_long_downtime_keeps_only_the_newest_ticks() -> None:
    every = schedule(every="1s")
    ticks = ticks_between(every, T0 - timedelta(days=30), T0, limit=3)
    assert ticks == [T0 - timedelta(seconds=2), T0 - timedelta(seconds=1), T0]


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("all", [T0 + 5 * MIN, T0 + 10 * MIN, T0 + 15 * MIN, T0 + 20 * MIN]),
        ("latest", [T0 + 20 * MIN]),
        ("none", [T0 + 20 * MIN]),
    ],
)
def test_catch_up_policies_after_downtime(catch_up: str, expected: list[datetime]) -> None:
    five = schedule(cron="*/5 * * * *", catch_up=catch_up)
    now = T0 + 20 * MIN + timedelta(seconds=3)
    assert due_ticks(five, T0, now, grace=timedelta(seconds=30)) == expected


def test_none_fires_nothing_when_every_due_tick_was_missed() -> None:
    five = schedule(cron="*/5 * * * *", catch_up="none")
    now = T0 + 22 * MIN
    assert due_ticks(five, T0, now, grace=timedelta(seconds=30)) == []


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"cron": "* * * * *", "every": "1m"},
        {"cron": "61 * * * *"},
        {"cron": "* * *"},
        {"every": "0s"},
        {"every": "1m", "timezone": "Mars/Olympus"},
    ],
)
def test_invalid_schedules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError
        schedule(**fields)


def scheduled(catch_up: str = "latest") -> Story:
    return story(
        OPEN,
        id="nightly",
        trigger={"schedule": {"cron": "*/5 * * * *", "catch_up": catch_up}},
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_ticker(
    cursors: dict[str, datetime], clock: Clock, publisher: FakePublisher, catch_up: str = "all"
) -> Ticker:
    ready = asyncio.Event()
    ready.set()
    return Ticker(
        catalog=catalog_of(scheduled(catch_up)),
        catalog_ready=ready,
        publisher=publisher,
        topics=TopicSettings(),
        metrics=IngestMetrics(CollectorRegistry()),
        cursors=cursors,
        clock=clock,
    )


async def test_the_loop_starts_from_now_then_fires_each_tick_once() -> None:
    publisher = FakePublisher()
    clock = Clock(T0 + timedelta(seconds=10))
    ticker = make_ticker({}, clock, publisher)

    assert await ticker.fire_due() == 0  # first sight: nothing in the past
    clock.now = T0 + 5 * MIN + timedelta(seconds=1)
    assert await ticker.fire_due() == 1
    assert await ticker.fire_due() == 0  # same tick again: nothing

    [command] = publisher.envelopes("baton.commands")
    start = StartRun.model_validate(command.data)
    assert start.run_id == ids.run_id_for("nightly", tick_key(T0 + 5 * MIN))
    assert start.dedup_key == "schedule:2026-03-28T23:05:00+00:00"
    assert start.trigger["schedule"]["tick"] == "2026-03-28T23:05:00+00:00"  # type: ignore[index,call-overload]
    [cursor] = publisher.envelopes("baton.schedules")
    assert ScheduleCursor.model_validate(cursor.data).handled_through == clock.now


async def test_a_restarted_replica_resumes_from_the_recorded_cursor() -> None:
    first = FakePublisher()
    clock = Clock(T0 + 5 * MIN + timedelta(seconds=1))
    await make_ticker({"nightly": T0}, clock, first).fire_due()
    cursors = load_cursors(
        record_of(e, topic="baton.schedules", offset=n)
        for n, e in enumerate(first.envelopes("baton.schedules"))
    )

    second = FakePublisher()
    clock.now = T0 + 21 * MIN
    assert await make_ticker(cursors, clock, second).fire_due() == 3  # 10, 15, 20


async def test_the_cursor_does_not_move_when_kafka_refuses_the_commands() -> None:
    publisher = FakePublisher()
    publisher.error = RuntimeError("broker down")
    clock = Clock(T0 + 5 * MIN + timedelta(seconds=1))
    cursors = {"nightly": T0}
    ticker = make_ticker(cursors, clock, publisher)

    with pytest.raises(RuntimeError):
        await ticker.fire_due()
    assert cursors["nightly"] == T0
    publisher.error = None
    assert await ticker.fire_due() == 1
