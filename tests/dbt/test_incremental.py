"""An incremental run after new data equals a full refresh, mart for mart (DuckDB and PostgreSQL).

Generated data is split by event time: everything before the cutoff is loaded and built first;
the later events then arrive (appended, as `lifeline load` without --replace does) and the
project is built incrementally; finally a --full-refresh build over the same raw data must give
identical marts.

The first build leaves out the data tests: it only puts the warehouse into shape. The incremental
build runs them as an incremental run does (on the rows it wrote), and the reference --full-refresh
build runs them over every row of the same models, the first batch's rows included."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

import table_snapshot
from orchestration.contract import CONTRACT_MARTS
from orchestration.dbt_runner import run_dbt
from orchestration.load import load

AS_OF = datetime(2026, 11, 1)
CUTOFF = "2026-10-25T00:00:00Z"
MARTS = [*CONTRACT_MARTS, "quarantine", "profile_merges"]
RUN_STAMPS = {"changed_at"}  # identity_map, lifecycle_stage_history: the start of the run that wrote the row


@pytest.fixture(scope="module")
def split_data(tmp_path_factory) -> tuple[Path, Path]:
    from seeds.generate import generate

    root = tmp_path_factory.mktemp("incremental")
    generate(root / "all", people=1_000, seed=11)
    first, later = root / "first", root / "later"
    con = duckdb.connect()
    for table_dir in (root / "all").iterdir():
        if table_dir.name.startswith("_"):
            continue
        (first / table_dir.name).mkdir(parents=True)
        source = f"read_parquet('{table_dir}/*.parquet')"
        if table_dir.name == "events":
            (later / "events").mkdir(parents=True)
            con.execute(f"copy (select * from {source} where coalesce(occurred_at, '') < '{CUTOFF}') "
                        f"to '{first / 'events' / 'part-0.parquet'}' (format parquet)")
            con.execute(f"copy (select * from {source} where coalesce(occurred_at, '') >= '{CUTOFF}') "
                        f"to '{later / 'events' / 'part-0.parquet'}' (format parquet)")
        else:
            con.execute(f"copy (select * from {source}) to '{first / table_dir.name / 'part-0.parquet'}' (format parquet)")
    con.close()
    return first, later


def snapshot(warehouse) -> dict[str, list[tuple]]:
    return table_snapshot.snapshot(warehouse, MARTS, RUN_STAMPS)


def test_incremental_run_equals_full_refresh(any_warehouse, split_data):
    first, later = split_data
    load(any_warehouse, first, replace=True)
    run_dbt(any_warehouse, "build", ["--full-refresh", "--exclude-resource-type", "test"], as_of=AS_OF)
    load(any_warehouse, later, replace=False)
    run_dbt(any_warehouse, "build", as_of=AS_OF)
    incremental = snapshot(any_warehouse)
    run_dbt(any_warehouse, "build", ["--full-refresh"], as_of=AS_OF)
    full = snapshot(any_warehouse)
    for mart in MARTS:
        assert incremental[mart] == full[mart], f"{mart} differs after an incremental run"
    assert len(full["identity_map"]) > 1_000 and len(full["audience_members"]) > 0
