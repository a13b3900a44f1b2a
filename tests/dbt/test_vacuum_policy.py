"""DuckDB's vacuum of deleted rows under Lifeline's policy (macros/vacuum_policy.sql): an incremental
run defers it while every table of the warehouse holds less than vacuum_deleted_share of deleted
rows; the run that starts at or over it vacuums, reclaiming the rows deleted while it was deferred,
so the stored rows stay bounded over repeated runs.

The deletes and appends of each round are made directly (as delete+insert does, with vacuum off);
the run is a one-seed `dbt seed`, which runs the project's on-run-start hook like any build and
commits, so DuckDB checkpoints at its close. Tables need several full row groups (122,880 rows)
for a vacuum to merge any."""
from __future__ import annotations

import duckdb

from orchestration.dbt_runner import run_dbt
from syncs.warehouse import Warehouse

ROW_GROUP = 122_880
ROWS = 8 * ROW_GROUP
TABLE = "staging.base_events"  # any table would do


def _stored(path: str) -> int:
    """Rows the table stores, deleted ones included until a vacuum drops them."""
    con = duckdb.connect(path)
    stored = con.execute("select estimated_size from duckdb_tables() "
                         "where schema_name = 'staging' and table_name = 'base_events'").fetchone()[0]
    con.close()
    return stored


def _delete_without_vacuum(path: str, first_row_group: int) -> None:
    """Three rows in four of two row groups deleted, as delete+insert does in a run that defers the
    vacuum: a checkpoint with vacuum on would merge what is left of them into one row group."""
    con = duckdb.connect(path, config={"max_vacuum_tasks": 0})
    con.execute(f"delete from {TABLE} where i // {ROW_GROUP} in ({first_row_group}, {first_row_group + 1}) and i % 4 < 3")
    con.close()


def _run(warehouse: Warehouse) -> str:
    output = run_dbt(warehouse, "seed", ["--select", "audience_settings"]).output
    return "deferred" if "Lifeline vacuum: deferred" in output else "on" if "Lifeline vacuum: on" in output else output


def test_incremental_runs_defer_the_vacuum_until_a_table_passes_the_deleted_share(duck_warehouse: Warehouse):
    path = str(duck_warehouse.duckdb_path)
    con = duckdb.connect(path)
    con.execute(f"create schema staging; create table {TABLE} as select i from range({ROWS}) r(i)")
    con.close()
    # 18.75% of the rows deleted, under vacuum_deleted_share (0.2): the run does not vacuum them.
    _delete_without_vacuum(path, 0)
    assert _run(duck_warehouse) == "deferred"
    assert _stored(path) == ROWS
    # 37.5%: the next run vacuums, the rows deleted while it was deferred too, down to about the
    # live rows: what a table keeps stays bounded by the share plus one run's deletes.
    _delete_without_vacuum(path, 2)
    assert _run(duck_warehouse) == "on"
    live = ROWS - 2 * (2 * ROW_GROUP * 3 // 4)
    assert live <= _stored(path) <= live + ROW_GROUP // 4, (_stored(path), live)
