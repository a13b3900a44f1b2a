"""A warehouse built twice from the lifecycle scenario (two audience snapshots) plus a past
'test_lift' snapshot, shared by the report tests of this folder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lifecycle"))

from lifecycle_scenario import AS_OF, EARLY_AS_OF, write_scenario  # noqa: E402
from scenario_warehouse import role_ids, write_lift_history  # noqa: E402
from orchestration.dbt_runner import run_dbt  # noqa: E402
from orchestration.load import load  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402


@pytest.fixture(scope="session")
def report_warehouse(tmp_path_factory) -> Warehouse:
    root = tmp_path_factory.mktemp("report")
    warehouse = Warehouse(kind="duckdb", duckdb_path=root / "warehouse.duckdb")
    load(warehouse, write_scenario(root / "raw"), replace=True)
    run_dbt(warehouse, "build", as_of=EARLY_AS_OF)
    write_lift_history(warehouse, role_ids(warehouse))
    run_dbt(warehouse, "build", as_of=AS_OF)
    return warehouse
