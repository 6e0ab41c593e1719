"""Schedule ticks and the catch-up policy: pure, the current time is passed in.

A cron schedule's ticks are the times its expression matches in its timezone. An
``every`` schedule's ticks are the multiples of the interval since the Unix epoch (UTC),
so every replica computes the same ticks without talking to the others.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import JsonValue

from baton_common import ids
from baton_common.commands import StartRun
from baton_common.story import Story
from baton_common.triggers import ScheduleTrigger

__all__ = ["MAX_CATCH_UP", "due_ticks", "tick_key", "tick_start", "ticks_between"]

MAX_CATCH_UP: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def ticks_between(
    schedule: ScheduleTrigger, after: datetime, until: datetime, limit: int = MAX_CATCH_UP
) -> list[datetime]:
    """Ticks ``t`` with ``after < t <= until`` in UTC, oldest first; only the newest
    ``limit`` of them, found by walking back from ``until`` (so a long downtime costs
    ``limit`` steps, not one per missed tick)."""
    newest_first: list[datetime] = []
    if schedule.every is not None:
        step = schedule.every
        tick = _EPOCH + ((until - _EPOCH) // step) * step
        while tick > after and len(newest_first) < limit:
            newest_first.append(tick)
            tick -= step
    else:
        zone = ZoneInfo(schedule.timezone)
        # croniter's get_prev from an exact match skips it; start just after ``until``.
        it = croniter(schedule.cron, (until + timedelta(microseconds=1)).astimezone(zone))
        while len(newest_first) < limit:
            tick = it.get_prev(datetime).astimezone(UTC)
            if tick <= after:
                break
            if tick <= until:
                newest_first.append(tick)
    return newest_first[::-1]


def due_ticks(
    schedule: ScheduleTrigger, cursor: datetime, now: datetime, grace: timedelta
) -> list[datetime]:
    """The ticks to fire now, given the last tick handled (``cursor``) and the policy.

    Ticks later than ``cursor`` and not after ``now`` are due. Those older than ``grace``
    were missed (no ingest was running); ``catch_up`` decides: ``all`` fires every one
    (the newest :data:`MAX_CATCH_UP`), ``latest`` only the most recent due tick, ``none``
    only ticks within ``grace``.
    """
    due = ticks_between(schedule, cursor, now)
    if schedule.catch_up == "all":
        return due
    if schedule.catch_up == "latest":
        return due[-1:]
    return [t for t in due if now - t <= grace]


def tick_key(tick: datetime) -> str:
    """The dedup key of a tick: every replica derives the same one."""
    return "schedule:" + tick.astimezone(UTC).isoformat()


def tick_start(story: Story, tick: datetime) -> StartRun:
    """The StartRun of ``story`` for ``tick``; its run id comes from the story and tick."""
    schedule = story.trigger.schedule
    assert schedule is not None, "only scheduled stories have ticks"
    key = tick_key(tick)
    body: dict[str, JsonValue] = {
        "schedule": {
            "tick": tick.astimezone(UTC).isoformat(),
            "cron": schedule.cron,
            "every_seconds": schedule.every.total_seconds() if schedule.every else None,
            "timezone": schedule.timezone,
        }
    }
    return StartRun(
        run_id=ids.run_id_for(story.id, key),
        story_id=story.id,
        story_version=story.version,
        trigger=body,
        dedup_key=key,
        dedup_window_seconds=int(schedule.dedup_window.total_seconds()),
    )
