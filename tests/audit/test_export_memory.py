"""Exports stream: 100,000 runs leave the exporter's peak memory almost where it was.

The runs are generated inside PostgreSQL (fast); the export runs in a child process so
its peak RSS (``ru_maxrss``) measures the export alone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from baton_audit.db import Pool

pytestmark = pytest.mark.integration

RUNS = 100_000
EVENTS_PER_RUN = 2
PEAK_GROWTH_BOUND_MIB = 40
"""The stated bound. Holding the export in memory would take several hundred MiB
(200,000 envelopes of ~600 bytes as Python objects); streaming needs a few chunks."""

_GENERATE = f"""
insert into runs (run_id, story_id, story_version, status, started_at, ended_at, last_seq,
                  correlation_id, dedup_key, event_count, updated_at, state)
select 'run-' || g, 'bulk', 1, 'succeeded',
       timestamptz '2025-01-01' + g * interval '1 second',
       timestamptz '2025-01-01' + g * interval '1 second' + interval '1 minute',
       {EVENTS_PER_RUN}, 'corr-' || g, null, {EVENTS_PER_RUN},
       timestamptz '2025-01-01' + g * interval '1 second' + interval '1 minute', null
from generate_series(1, {RUNS}) g;

insert into events (kafka_topic, kafka_partition, kafka_offset, id, run_id, seq, type, time,
                    source, causationid, correlationid, actor, storyid, storyversion,
                    prevhash, hash, data, time_text, specversion, datacontenttype)
select 'baton.runs', 0, g * 10 + s, 'ev-' || g || '-' || s, 'run-' || g, s,
       'baton.run.started.v1', timestamptz '2025-01-01' + g * interval '1 second',
       'baton/scheduler', 'cmd-' || g, 'corr-' || g, 'scheduler', 'bulk', 1,
       md5(g::text || (s - 1)::text), md5(g::text || s::text),
       jsonb_build_object('type', 'baton.run.started.v1', 'run_id', 'run-' || g,
                          'trigger', jsonb_build_object('alert_id', 'A-' || g),
                          'padding', repeat('x', 300)),
       (timestamptz '2025-01-01' + g * interval '1 second')::text, '1.0', 'application/json'
from generate_series(1, {RUNS}) g cross join generate_series(1, {EVENTS_PER_RUN}) s;
analyze runs; analyze events;
"""


async def test_an_export_of_100000_runs_streams_in_bounded_memory(
    pool: Pool, database_url: str
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(_GENERATE)
        schema = await conn.fetchval("select current_schema()")
    assert isinstance(schema, str)

    probe = Path(__file__).with_name("export_probe.py")
    for fmt, header in (("jsonl", 0), ("csv", 1)):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(probe), database_url, schema, fmt],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(fmt, figures)  # shown with -s: the measured figures

        assert figures["lines"] == RUNS * EVENTS_PER_RUN + header
        assert figures["bytes"] > RUNS * EVENTS_PER_RUN * 300  # the padding made it out
        growth_mib = (figures["peak_after"] - figures["peak_before"]) / 1024
        assert growth_mib < PEAK_GROWTH_BOUND_MIB, figures
