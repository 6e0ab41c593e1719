"""Migration 0540 on a store written before it: every envelope reads back as it was stored.

Rows are written in the old shape (the whole envelope document in ``envelope``), the
migration moves the attributes without a column of their own into columns and drops
``envelope``; ``store.envelope_document`` must give the very document, keys in the same
order, so exports and verification read what they read before.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from baton_audit.db import Pool, create_pool, migrate
from baton_audit.export import _dumps
from baton_audit.store import ENVELOPE, envelope_document
from baton_audit.writer import _EVENT_COLUMNS
from baton_common import postgres
from baton_common.envelope import Envelope

from .fakes import approved_run, triage_run

pytestmark = pytest.mark.integration

# The events columns before 0540: those of today up to ``data``, then the whole document.
_OLD_COLUMNS = [*_EVENT_COLUMNS[: _EVENT_COLUMNS.index("data") + 1], "envelope"]


def _old_row(envelope: Envelope, offset: int) -> tuple[object, ...]:
    document: dict[str, object] = dict(envelope.__dict__)
    document["time"] = TypeAdapter(datetime).dump_python(envelope.time, mode="json")
    attributes = [getattr(envelope, name) for name in _OLD_COLUMNS[6:16]]  # type ... hash
    head = ("baton.runs", 0, offset, envelope.id, envelope.subject, envelope.seq)
    return (*head, *attributes, envelope.data, document)


async def test_envelopes_stored_whole_read_back_the_same_after_the_migration(
    database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = approved_run("r1") + triage_run("t1")
    log.append(  # another offset, microseconds, a traceparent and odd payload values
        log[0].model_copy(
            update={
                "id": "odd",
                "time": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "data": {"type": "X", "text": "caf\u00e9 \U0001f600", "n": [0.1, -0.0, 1e300]},
            }
        )
    )
    loaded = postgres.load_migrations
    monkeypatch.setattr(
        postgres,
        "load_migrations",
        lambda package: [m for m in loaded(package) if m.version < 540],
    )
    pool: Pool = await create_pool(database_url, schema=schema, max_size=1)
    try:
        await migrate(pool, schema=schema)
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "events",
                records=[_old_row(envelope, n) for n, envelope in enumerate(log)],
                columns=_OLD_COLUMNS,
            )
            before = [
                row["envelope"]
                for row in await conn.fetch("select envelope from events order by kafka_offset")
            ]
        monkeypatch.setattr(postgres, "load_migrations", loaded)

        assert 540 in await migrate(pool, schema=schema)

        async with pool.acquire() as conn:
            rows = await conn.fetch(f"select {ENVELOPE} from events e order by kafka_offset")
    finally:
        await pool.close()
    after = [envelope_document(row) for row in rows]
    assert len(after) == len(log)
    for old, new in zip(before, after, strict=True):
        assert isinstance(old, dict)
        assert new == old
        assert _dumps(new) == _dumps(old)  # the same JSONL line, keys in the same order
