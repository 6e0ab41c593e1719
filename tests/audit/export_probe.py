"""Run in a child process by test_export_memory: stream an export, report peak RSS growth.

Usage: python export_probe.py DATABASE_URL SCHEMA FORMAT
Prints one JSON line: rows written, bytes, and peak RSS (KiB) before and after the export.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from baton_audit.db import create_pool
from baton_audit.export import ExportFormat, ExportRange, stream_events


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(url: str, schema: str, fmt: ExportFormat) -> None:
    pool = await create_pool(url, schema=schema, max_size=1)
    try:
        async with pool.acquire() as conn:  # warm the connection and its codecs
            await conn.fetchval("select count(*) from events")
        before = peak_kib()
        size = lines = 0
        async for chunk in stream_events(pool, ExportRange(), fmt):
            size += len(chunk)  # a sink that keeps nothing, like a socket
            lines += chunk.count(b"\n")
        after = peak_kib()
    finally:
        await pool.close()
    print(json.dumps({"lines": lines, "bytes": size, "peak_before": before, "peak_after": after}))


if __name__ == "__main__":
    fmt = sys.argv[3]
    assert fmt in ("jsonl", "csv")
    asyncio.run(main(sys.argv[1], sys.argv[2], fmt))  # type: ignore[arg-type]
