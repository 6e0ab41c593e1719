"""Migration 0560 on a store whose run states are jsonb: the same checksum and run rows.

A store is projected on the current schema, its rows copied into a schema at migration
0550 (the state cast back to jsonb, as the writer stored it before), and that schema
migrated: the checksum before and after the migration is the projected store's, and the
run rows read back the same.
"""

from __future__ import annotations

import pytest

from baton_audit.admin import PROJECTED_TABLES, checksum
from baton_audit.db import Pool, create_pool, migrate, quote_ident
from baton_audit.run_rows import RUN_COLUMNS, RunRows
from baton_common import postgres

from .fakes import KEPT_RUNS, TOPIC, approved_run, projector_on, records, triage_run

pytestmark = pytest.mark.integration


async def _runs(pool: Pool) -> dict[str, object]:
    async with pool.acquire() as conn, conn.transaction():
        ids = [str(r["run_id"]) for r in await conn.fetch("select run_id from runs")]
        return dict((await RunRows(KEPT_RUNS).lock(conn, ids)).rows)


async def test_states_stored_as_jsonb_give_the_same_checksum_and_rows_after_it(
    pool: Pool, database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = approved_run("r1") + triage_run("t1") + approved_run("r2")[:3]
    await projector_on(pool).apply_batch(TOPIC, 0, records(log))
    async with pool.acquire() as conn:
        projected = str(await conn.fetchval("select current_schema()"))
    loaded = postgres.load_migrations
    monkeypatch.setattr(
        postgres,
        "load_migrations",
        lambda package: [m for m in loaded(package) if m.version != 560],
    )
    old: Pool = await create_pool(database_url, schema=schema, max_size=1)
    try:
        await migrate(old, schema=schema)
        async with old.acquire() as conn:
            assert (
                await conn.fetchval(
                    "select data_type from information_schema.columns"
                    " where table_schema = $1 and table_name = 'runs' and column_name = 'state'",
                    schema,
                )
                == "jsonb"
            )
            for table in PROJECTED_TABLES:
                source = f"{quote_ident(projected)}.{table}"
                if table == "runs":
                    columns = RUN_COLUMNS.replace(" state", " state::jsonb")
                    source = f"(select {columns} from {source}) as r"
                await conn.execute(f"insert into {table} select * from {source}")
        before = await checksum(old)
        monkeypatch.setattr(postgres, "load_migrations", loaded)

        assert 560 in await migrate(old, schema=schema)

        after = await checksum(old)
        rows = await _runs(old)
    finally:
        await old.close()
    expected = await checksum(pool)
    assert expected[1]["runs"] == 3
    assert before == after == expected
    assert rows == await _runs(pool)
