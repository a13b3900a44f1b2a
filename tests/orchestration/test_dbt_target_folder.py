"""run_dbt's artifacts folder (where dbt keeps partial_parse.msgpack): dbt re-parses the whole project
when that file was written for another target, connection or --vars, so under
LIFELINE_DBT_TARGET_ROOT each of those gets a folder of its own, and without it the folder stays
target/<target>."""
from __future__ import annotations

from pathlib import Path

from orchestration.dbt_runner import dbt_invocation, target_folder
from syncs.warehouse import Warehouse


def pg(dbname: str, password: str = "secret") -> Warehouse:
    return Warehouse.from_env({"LIFELINE_WAREHOUSE": "postgres", "PGHOST": "127.0.0.1", "PGPORT": "5433",
                               "PGUSER": "lifeline", "PGPASSWORD": password, "PGDATABASE": dbname})


def test_one_folder_per_target_connection_and_vars_under_the_root(tmp_path: Path):
    root = str(tmp_path)
    duck_a = Warehouse(kind="duckdb", duckdb_path=tmp_path / "a.duckdb")
    duck_b = Warehouse(kind="duckdb", duckdb_path=tmp_path / "b.duckdb")
    folders = {target_folder(duck_a, root), target_folder(duck_b, root), target_folder(pg("one"), root),
               target_folder(pg("two"), root)}
    assert len(folders) == 4 and all(folder.parent == tmp_path for folder in folders), folders
    assert target_folder(duck_a, root).name.startswith("duckdb-") and target_folder(pg("one"), root).name.startswith("postgres-")
    # The same connection finds its folder again; another password is the same connection.
    assert target_folder(Warehouse(kind="duckdb", duckdb_path=tmp_path / "a.duckdb"), root) == target_folder(duck_a, root)
    assert target_folder(pg("one", password="other"), root) == target_folder(pg("one"), root)
    # Project --vars are part of dbt's parse; the per-run vars (environment) are not.
    plain, _ = dbt_invocation({"as_of": "2026-11-01 00:00:00"})
    other_day, _ = dbt_invocation({"as_of": "2026-11-02 00:00:00"})
    with_var, _ = dbt_invocation({"as_of": "2026-11-01 00:00:00", "at_risk_days": 60})
    assert target_folder(duck_a, root, plain) == target_folder(duck_a, root, other_day) == target_folder(duck_a, root)
    assert target_folder(duck_a, root, with_var) != target_folder(duck_a, root, plain)


def test_without_a_root_one_folder_per_target():
    duck = Warehouse(kind="duckdb", duckdb_path=Path("/data/a.duckdb"))
    assert target_folder(duck, None) == Path("target/duckdb")
    assert target_folder(Warehouse(kind="duckdb", duckdb_path=Path("/data/b.duckdb")), None) == Path("target/duckdb")
    assert target_folder(pg("one"), "") == Path("target/postgres")
