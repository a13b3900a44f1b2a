"""Per-run vars (as_of, the partition window) travel in LIFELINE_RUN_VARS, not in --vars, so that a
run with a new as_of reuses dbt's last parse instead of re-parsing the whole project; a value given
by hand in --vars still works; a malformed LIFELINE_RUN_VARS is a clear error."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path


from orchestration.dbt_runner import (RUN_VARS_ENV, dbt_env, dbt_executable, dbt_invocation,
                                      dbt_project_dir, run_dbt)
from syncs.warehouse import Warehouse

SHOW_AS_OF = ["show", "--inline", "select {{ lifeline.as_of() }} as as_of_value"]
REPARSE = "Unable to do partial parsing"


def show_as_of(warehouse: Warehouse, target_path: Path, as_of: datetime) -> str:
    return run_dbt(warehouse, SHOW_AS_OF[0], [*SHOW_AS_OF[1:], "--target-path", str(target_path)], as_of=as_of).output


def test_a_new_as_of_reaches_the_sql_without_a_full_reparse(tmp_path):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    first = show_as_of(warehouse, tmp_path / "target", datetime(2026, 1, 2, 3, 4, 5))
    assert "2026-01-02 03:04:05" in first, first
    second = show_as_of(warehouse, tmp_path / "target", datetime(2026, 7, 8, 9, 10, 11))
    assert "2026-07-08 09:10:11" in second, second
    assert REPARSE not in second, second  # with as_of in --vars, dbt says "config vars ... have changed"


def test_the_split_keeps_project_vars_in_vars_and_per_run_vars_in_the_environment():
    args, env = dbt_invocation({"as_of": "2026-11-01 00:00:00", "partition_start": "2026-10-31",
                                "partition_new_rows": True, "holdout_percent": 100})
    assert args == ["--vars", json.dumps({"holdout_percent": 100})]
    assert json.loads(env[RUN_VARS_ENV]) == {"as_of": "2026-11-01 00:00:00", "partition_start": "2026-10-31",
                                             "partition_new_rows": True}
    assert dbt_invocation({"as_of": "2026-11-01 00:00:00"})[0] == []  # nothing for --vars: no reparse


def run_by_hand(warehouse: Warehouse, target_path: Path, env_value: str | None, vars_text: str | None):
    """dbt as a user runs it, with --vars and/or LIFELINE_RUN_VARS of their own."""
    env = dbt_env(warehouse)
    env.pop(RUN_VARS_ENV, None)
    if env_value is not None:
        env[RUN_VARS_ENV] = env_value
    project = dbt_project_dir()
    command = [dbt_executable(), *SHOW_AS_OF, "--project-dir", str(project), "--profiles-dir", str(project),
               "--target-path", str(target_path), *(["--vars", vars_text] if vars_text else [])]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)


def test_as_of_in_vars_by_hand_still_works(tmp_path):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    done = run_by_hand(warehouse, tmp_path / "target", None, '{"as_of": "2025-05-06 07:08:09"}')
    assert done.returncode == 0 and "2025-05-06 07:08:09" in done.stdout, done.stdout + done.stderr


def test_a_malformed_run_vars_environment_is_a_clear_error(tmp_path):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    done = run_by_hand(warehouse, tmp_path / "target", "as_of=2026-01-01", None)  # not JSON (fromjson gives none)
    assert done.returncode != 0
    assert f"{RUN_VARS_ENV} must be a JSON object" in done.stdout, done.stdout


def test_run_dbt_ignores_a_stale_run_vars_environment(tmp_path, monkeypatch):
    """A LIFELINE_RUN_VARS left in the caller's environment never overrides run_dbt's own as_of."""
    monkeypatch.setenv(RUN_VARS_ENV, json.dumps({"as_of": "1999-01-01 00:00:00"}))
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    output = show_as_of(warehouse, tmp_path / "target", datetime(2026, 2, 3))
    assert "2026-02-03 00:00:00" in output and "1999" not in output, output
