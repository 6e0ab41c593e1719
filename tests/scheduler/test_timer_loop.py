"""The timer loop on an in-memory bus: what it appends, when, and what it leaves alone."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from scheduler_log import RUN, T0, Log

from baton_common import ids
from baton_common.commands import COMMAND_ADAPTER, FireTimer, StartRun
from baton_common.envelope import decode_record
from baton_common.story import parse_story
from baton_scheduler.store import RunStore
from baton_scheduler.timer_loop import TimerLoop

STORY = parse_story(
    "id: timed\nversion: 1\ntrigger: {webhook: {path: t}}\ntimeout: 1h\n"
    "steps:\n  a: {action: http, timeout: 30s}\n"
)


class Bus:
    """Records what a producer was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, int | None, FireTimer, str]] = []

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None,
    ) -> None:
        envelope = decode_record(value, headers)
        command = COMMAND_ADAPTER.validate_python(envelope.data)
        assert isinstance(command, FireTimer)
        self.sent.append((topic, key, partition, command, envelope.id))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def setup() -> tuple[Log, RunStore, Bus, Clock, TimerLoop]:
    log = Log(STORY)
    log.send(StartRun(run_id=RUN, story_id="timed", trigger={}))
    store = RunStore()
    store.apply({RUN: (4, log.run)})
    bus, clock = Bus(), Clock()
    producer: AIOKafkaProducer = bus
    loop = TimerLoop(store, producer, "baton.commands", resend_seconds=60, clock=clock)
    loop.track([log.run])
    return log, store, bus, clock, loop


async def test_only_due_timers_are_appended_to_the_runs_partition() -> None:
    _, _, bus, clock, loop = setup()
    assert await loop.fire_due() == 0
    clock.now = T0 + timedelta(seconds=30)
    assert await loop.fire_due() == 1
    ((topic, key, partition, command, envelope_id),) = bus.sent
    assert (topic, key, partition) == ("baton.commands", RUN.encode(), 4)
    assert (command.kind, command.step, command.attempt) == ("step_timeout", "a", 1)
    assert envelope_id == ids.fire_command_id(command.timer_id)


async def test_a_fired_timer_is_resent_only_if_the_run_still_holds_it_later() -> None:
    log, store, bus, clock, loop = setup()
    clock.now = T0 + timedelta(seconds=30)
    await loop.fire_due()
    clock.now += timedelta(seconds=59)
    assert await loop.fire_due() == 0  # not resent before resend_seconds
    clock.now += timedelta(seconds=1)
    assert await loop.fire_due() == 1  # still pending: the first append was lost or early
    assert bus.sent[0][4] == bus.sent[1][4]  # same envelope id: the decider sees one timer
    # once the run no longer holds it, the loop forgets it
    (command,) = {c for *_, c, _ in bus.sent}
    log.send(command, at=clock.now)
    store.apply({RUN: (4, log.run)})
    loop.track([log.run])
    clock.now += timedelta(minutes=5)
    assert await loop.fire_due() == 0


async def test_timers_of_runs_that_left_are_dropped() -> None:
    _, store, bus, clock, loop = setup()
    store.drop_partitions([4])
    clock.now = T0 + timedelta(hours=2)
    assert await loop.fire_due() == 0
    assert bus.sent == []


async def test_rebuilt_states_rearm_their_timers() -> None:
    _, store, bus, clock, _ = setup()
    producer: AIOKafkaProducer = bus
    fresh = TimerLoop(store, producer, "baton.commands", clock=clock)  # after a restart
    fresh.track(store.running())
    clock.now = T0 + timedelta(hours=1)
    assert await fresh.fire_due() == 2
    assert {c.kind for *_, c, _ in bus.sent} == {"step_timeout", "run_timeout"}
