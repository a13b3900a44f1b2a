"""Scaling is the warehouse's job: on PostgreSQL, the whole job (load, dbt build, predictions,
Great Expectations checks, syncs to the sandbox) never pulls a whole table into Python.

Every statement any SQLAlchemy engine in this process executes is watched (psycopg2 reports the
rows a result holds in `cursor.rowcount`); dbt runs as a subprocess and only sends SQL. With
tables of several thousand rows, no single result may hold more than PAGE_LIMIT rows: the
largest legitimate reads are one sync page and small aggregates (the prediction step reads
distinct (frequency, recency, T) triples, not customers)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.demo import run_demo

PEOPLE = 6_000
PAGE_LIMIT = 2_000  # well below every table that matters here (asserted below)


@pytest.fixture
def watched_results():
    seen: list[tuple[int, str]] = []

    def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001 - SQLAlchemy's signature
        if cursor.description is not None and cursor.rowcount is not None and cursor.rowcount >= 0:
            seen.append((cursor.rowcount, " ".join(statement.split())[:160]))

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    yield seen
    sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


def test_no_step_reads_a_whole_table_on_postgres(pg_warehouse, tmp_path: Path, watched_results):
    result = run_demo(pg_warehouse, home=tmp_path, people=PEOPLE, seed=7, port=0, regenerate=False,
                      echo=lambda _msg: None)
    assert all(r.status == "success" for r in result["syncs"]), [(r.name, r.message) for r in result["syncs"]]
    assert sum(r.adds for r in result["syncs"]) > 0, "the syncs must have sent something for this to mean anything"

    with pg_warehouse.engine().connect() as conn:
        sizes = {table: conn.execute(sa.text(f"select count(*) from {table}")).scalar()
                 for table in ("raw.events", "raw.message_events", f"{pg_warehouse.marts_schema}.profiles",
                               f"{pg_warehouse.marts_schema}.identity_map")}
    assert min(sizes.values()) > PAGE_LIMIT, sizes  # a whole-table read would show

    assert watched_results, "the watcher saw no statements: it is not attached"
    biggest = max(watched_results)
    assert biggest[0] <= PAGE_LIMIT, f"a single result held {biggest[0]} rows: {biggest[1]}"
