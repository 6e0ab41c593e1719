"""CPU per command of the scheduler's decide path, without Kafka (ADR 0150).

``Engine.handle`` (decode, validate, decide, journal, encode the records) and the store's
``apply`` after each batch, for the commands the scheduler bench sends: ``--runs`` runs of
its 8-step fan-out story, each StartRun then a CompleteStep per dispatched step, in waves
of ``--batch`` commands as a busy scheduler takes them. Prints CPU microseconds per command
(``time.process_time``, the best of ``--repeat`` passes, each on a fresh engine); with
``--profile``, a cProfile (CPU timer) summary of one more pass. Figures are printed, never
asserted.

Usage: ``uv run python bench/scheduler_decide.py --runs 300``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from baton_common import ids
from baton_common.catalog import StoryCatalog
from baton_common.commands import CompleteStep, StartRun
from baton_common.envelope import encode_record
from baton_common.records import StoryPublished
from baton_common.service import configure_logging
from baton_common.testing import Record
from baton_scheduler.engine import Engine, Staged
from scheduler import STORY, STORY_TEXT, command_envelope, new_traceparent, topics_for

# the story's steps in the order their CompleteSteps arrive (fetch, the fan-out, then on)
ORDER = ["fetch", "a", "b", "c", "d", "join", "act", "close"]


def commands(runs: int) -> list[Record]:
    """Every command of ``runs`` runs, wave by wave (all StartRuns, then each step)."""
    run_ids = [ids.uuid4_text() for _ in range(runs)]
    out: list[Record] = []
    waves: list[list[StartRun | CompleteStep]] = [
        [StartRun(run_id=r, story_id=STORY.id, trigger={"n": n}) for n, r in enumerate(run_ids)]
    ]
    for step in ORDER:
        waves.append(
            [
                CompleteStep(
                    run_id=r, step=step, attempt_id=ids.attempt_id(r, step, 1), output={"ok": True}
                )
                for r in run_ids
            ]
        )
    for wave in waves:
        for command in wave:
            value, headers = encode_record(command_envelope(command, new_traceparent()))
            key = command.run_id.encode()
            out.append(Record("c", 0, len(out), key, value, tuple(headers)))
    return out


def engine() -> Engine:
    catalog = StoryCatalog()
    catalog.add(StoryPublished(story=STORY, source=STORY_TEXT))
    none: Any = None
    return Engine(
        consumer=none,
        producer=none,
        recovery_consumer=none,
        catalog=catalog,
        topics=topics_for("decide", 1),
        group_id="g",
    )


async def one_pass(records: list[Record], batch: int) -> tuple[float, int]:
    eng = engine()
    eng.assigned.add(0)
    produced = 0
    began = time.process_time()
    for start in range(0, len(records), batch):
        staged: Staged = {}
        for record in records[start : start + batch]:
            produced += len(await eng.handle(record, staged))
        eng.store.apply(staged)
        eng.tally.apply()  # as the engine does after each commit (ADR 0183)
    return time.process_time() - began, produced


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    configure_logging("bench", "WARNING")  # as the service runs
    records = commands(args.runs)
    best = None
    for _ in range(args.repeat):
        cpu, produced = await one_pass(records, args.batch)
        best = cpu if best is None else min(best, cpu)
    assert best is not None
    print(
        f"decide path: {len(records)} commands, {produced} records, batches of {args.batch}: "
        f"{best / len(records) * 1e6:.1f} CPU us per command (best of {args.repeat})"
    )
    if args.profile:
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await one_pass(records, args.batch)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main())
