"""Shared fixtures: a fresh DuckDB warehouse per test, and a throwaway PostgreSQL server per
session with a fresh database per test. In CI (CI=true) a missing PostgreSQL fails, never skips."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import PostgresServer, PostgresUnavailable  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402
from warehouse_templates import ModuleWarehouses, linked_duckdb  # noqa: E402

# No telemetry from anything a test starts.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")



def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def datasets_dir() -> Path | None:
    """../shared/datasets beside the project (or LIFELINE_DATASETS_DIR); None when absent."""
    candidate = Path(os.environ.get("LIFELINE_DATASETS_DIR", ROOT.parent / "shared" / "datasets"))
    return candidate if candidate.is_dir() else None


# dbt's artifacts and file log, which no test reads unless it asks for them (fixture dbt_artifacts):
# writing manifest.json twice and run_results.json, and formatting every debug line for
# logs/dbt.log, is 10-15% of the CPU of a dbt build of the test fixtures (measured in-process, and
# on tests/dbt/test_incremental_profiles.py: 33 -> 29-30 s of CPU). Models, tests and the Dagster
# runs behave the same without them.
NO_DBT_ARTIFACTS = {"DBT_WRITE_JSON": "false", "DBT_LOG_LEVEL_FILE": "none"}
for _name, _value in NO_DBT_ARTIFACTS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def dbt_artifacts(monkeypatch):
    """For a test that reads what dbt writes beside a run (run_results.json, manifest.json, dbt.log):
    dbt's defaults, as a user's run has them."""
    for name in NO_DBT_ARTIFACTS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def warm_dbt(tmp_path_factory):
    """Every dbt command of this test process (and of the processes it starts) runs through a warm
    dbt server (orchestration/dbt_server.py): a fork of a process that imported dbt once, instead of
    a new process paying 2-5 s of imports per command. LIFELINE_TEST_DBT_SERVER=0 turns it off."""
    if os.environ.get("LIFELINE_TEST_DBT_SERVER", "1") == "0":
        yield None
        return
    from orchestration.dbt_server import WarmDbt

    with WarmDbt.start(tmp_path_factory.mktemp("dbt_server")) as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIFELINE_DBT_EXECUTABLE", str(server.executable))
        yield server


@pytest.fixture(scope="session", autouse=True)
def dbt_target_per_worker(tmp_path_factory):
    """run_dbt's artifacts folders (orchestration.dbt_runner.TARGET_ROOT_ENV) in this test process's
    temporary folder. dbt re-parses the whole project (3-4 s of CPU) whenever partial_parse.msgpack
    was written for another connection or target: the pytest-xdist workers shared
    dbt_project/target/<target>, so each worker's new warehouse voided the other's file. Under this
    root run_dbt keeps one folder per target, connection and --vars (not DBT_TARGET_PATH, which it
    takes as one folder for everything), so a test that alternates warehouses (DuckDB and
    PostgreSQL, an incremental warehouse and its full-refresh twin, a module's warehouse and a
    test's) does not re-parse at each switch."""
    from orchestration.dbt_runner import TARGET_ROOT_ENV

    if TARGET_ROOT_ENV in os.environ:
        yield os.environ[TARGET_ROOT_ENV]
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TARGET_ROOT_ENV, str(tmp_path_factory.mktemp("dbt_target")))
        yield os.environ[TARGET_ROOT_ENV]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture
def shared_datasets() -> Path:
    found = datasets_dir()
    if found is None:
        if in_ci():
            pytest.fail("../shared/datasets is missing in CI: the real-data tests cannot run")
        pytest.skip("../shared/datasets not present on this machine")
    return found


@pytest.fixture(scope="session")
def warehouse_link(tmp_path_factory) -> Path:
    """A path that stays the same for every test of this process (see duck_warehouse)."""
    return tmp_path_factory.getbasetemp() / "this_test"


@pytest.fixture
def duck_warehouse(tmp_path: Path, warehouse_link: Path) -> Warehouse:
    """A fresh DuckDB warehouse in this test's folder, reached through a path that is the same for
    every test of this process (`warehouse_link`, see linked_duckdb)."""
    return linked_duckdb(warehouse_link, tmp_path)


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_warehouse(pg_server: PostgresServer) -> Warehouse:
    """A fresh, empty PostgreSQL database of the same name for every test of this process (the
    previous test's is dropped): dbt keys its partial parse on the connection, database name
    included (see duck_warehouse)."""
    name = f"lifeline_test_{os.getpid()}"
    pg_server.create_database(name, replace=True)
    return Warehouse.from_env(pg_server.env(name))


@pytest.fixture(params=["duckdb", "postgres"])
def any_warehouse(request) -> Warehouse:
    """Runs a test once on DuckDB and once on PostgreSQL."""
    return request.getfixturevalue("duck_warehouse" if request.param == "duckdb" else "pg_warehouse")


@pytest.fixture(scope="module")
def warehouse_templates(request, tmp_path_factory):
    """Per module: a state prepared once per warehouse kind, copied into each test's fresh warehouse
    (tests/warehouse_templates.py)."""
    from warehouse_templates import WarehouseTemplates

    return WarehouseTemplates(tmp_path_factory.mktemp("templates"), lambda: request.getfixturevalue("pg_server"))


@pytest.fixture(scope="session")
def module_warehouses(request, tmp_path_factory) -> ModuleWarehouses:
    """Module-scoped warehouses on the same connection for every module of this process
    (tests/warehouse_templates.py)."""
    return ModuleWarehouses(tmp_path_factory.getbasetemp(), lambda: request.getfixturevalue("pg_server"))
