"""Builds the lifecycle scenario (lifecycle_scenario.py) once per test run (DuckDB) or session
(PostgreSQL) for this folder:
  - DuckDB: a build at EARLY_AS_OF, synthetic lift history and hand-written predictions, a build at
    AS_OF with the p_alive rule off, then the lifecycle models and everything downstream rebuilt
    with at_risk_p_alive_below = 0.3;
  - PostgreSQL (only for tests that ask for it): the same data built at AS_OF with the rule on."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifecycle_scenario import AS_OF, EARLY_AS_OF, write_scenario  # noqa: E402
from scenario_warehouse import P_ALIVE_VARS, Snapshot, role_ids, write_lift_history, write_predictions  # noqa: E402
from warehouse_templates import built_once_per_run, copy_duckdb  # noqa: E402
from orchestration.dbt_runner import run_dbt  # noqa: E402
from orchestration.load import load  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402


@pytest.fixture(scope="session")
def scenario_dir(tmp_path_factory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("lifecycle_scenario"))


def build_duck_scenario(scenario_dir: Path, folder: Path) -> None:
    """The DuckDB scenario in folder/warehouse.duckdb, and what the builds in between showed in
    folder/snapshot.pickle."""
    warehouse = Warehouse(kind="duckdb", duckdb_path=folder / "warehouse.duckdb")
    load(warehouse, scenario_dir, replace=True)
    run_dbt(warehouse, "build", as_of=EARLY_AS_OF)
    snap = Snapshot(warehouse, ids=role_ids(warehouse))
    snap.early_history = snap.rows("select profile_id, stage, valid_from, valid_to from lifecycle_stage_history")
    write_lift_history(warehouse, snap.ids)
    run_dbt(warehouse, "build", as_of=AS_OF)
    snap.ids = role_ids(warehouse)
    write_predictions(warehouse, snap.ids)
    snap.off_stages = snap.stages()
    snap.off_members = snap.rows("select audience, channel, profile_id, is_holdout from audience_members")
    run_dbt(warehouse, "build", ["--select", "lifecycle_stage_history+"], as_of=AS_OF, extra_vars=P_ALIVE_VARS)
    (folder / "snapshot.pickle").write_bytes(pickle.dumps(
        {"ids": snap.ids, "early_history": snap.early_history, "off_stages": snap.off_stages,
         "off_members": snap.off_members}))


@pytest.fixture(scope="session")
def duck_scenario(scenario_dir, tmp_path_factory) -> Snapshot:
    """Built once per test run (the folder's files run on both pytest-xdist workers); each worker
    reads its own copy."""
    built = built_once_per_run(tmp_path_factory, "lifecycle_duck_scenario",
                               lambda folder: build_duck_scenario(scenario_dir, folder))
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path_factory.mktemp("lc_duck") / "warehouse.duckdb")
    copy_duckdb(built / "warehouse.duckdb", warehouse.duckdb_path)
    return Snapshot(warehouse, **pickle.loads((built / "snapshot.pickle").read_bytes()))


@pytest.fixture(scope="session")
def pg_scenario(scenario_dir, duck_scenario, pg_server) -> Snapshot:
    pg_server.create_database("lifecycle_scenario")
    warehouse = Warehouse.from_env(pg_server.env("lifecycle_scenario"))
    load(warehouse, scenario_dir, replace=True)
    write_predictions(warehouse, duck_scenario.ids)
    run_dbt(warehouse, "build", as_of=AS_OF, extra_vars=P_ALIVE_VARS)
    return Snapshot(warehouse, ids=role_ids(warehouse))
