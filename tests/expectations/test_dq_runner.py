"""Runner behaviour beyond the suites: the DuckDB fix really fetches rows and releases the file,
no row values (PII) in stored results, nothing written outside the results dir, clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from expectations.runner import MissingTableError, UnknownSuiteError, available_suites, run_suite
from syncs.warehouse import Warehouse
from test_dq_suites import PARAMS, execute, insert, raw_tables


def test_duckdb_rows_fetched_file_released_no_pii_no_stray_files(duck_warehouse: Warehouse, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    raw_tables(duck_warehouse)
    insert(duck_warehouse, "raw.events", [(None, "page_view", "2024-05-10", "secret.person@example.com", None)] * 9)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = run_suite(duck_warehouse, "raw.events", params=PARAMS)   # default results dir
    # GE's stock path on duckdb-engine would see zero rows; these counts come from real fetches
    counts = {o.check: o.observed_value for o in result.outcomes}
    observed = json.loads(counts["event_id_not_null"])
    assert (observed["element_count"], observed["unexpected_count"]) == (209, 9)
    assert set(json.loads(counts["required_columns_exist"])) == {"event_id", "event_type", "occurred_at", "email",
                                                                 "extra_col"}
    assert result.result_path.resolve().is_relative_to((workdir / ".lifeline" / "dq").resolve())
    assert sorted(p.relative_to(workdir).parts[0] for p in workdir.rglob("*") if p.is_file()) == [".lifeline"]
    assert "secret.person" not in result.result_path.read_text()
    # the DuckDB file is released: another process (dbt, the loader) can write to it right away
    subprocess.run([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                    "c.execute(\"insert into raw.products values ('p9', 'x')\"); c.close()",
                    str(duck_warehouse.duckdb_path)], check=True, timeout=60)


def test_unknown_suite_and_missing_warehouse_say_what_to_do(duck_warehouse: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lifeline load"):
        run_suite(duck_warehouse, "raw.events", results_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="LIFELINE_DUCKDB_PATH"):
        available_suites(duck_warehouse)
    assert not duck_warehouse.duckdb_path.exists()   # checking never creates an empty warehouse
    execute(duck_warehouse, "create schema raw")
    with pytest.raises(UnknownSuiteError, match=r"raw\.<table>.*available_suites"):
        run_suite(duck_warehouse, "raw.nope_table", results_dir=tmp_path)
    with pytest.raises(MissingTableError, match="lifeline load"):
        run_suite(duck_warehouse, "raw.events", results_dir=tmp_path)
    with pytest.raises(UnknownSuiteError, match="audience.<audience>.<channel>"):
        run_suite(duck_warehouse, "marts", results_dir=tmp_path)
    with pytest.raises(ValidationError, match="max_size_chnage"):   # a misspelt threshold is not ignored
        run_suite(duck_warehouse, "profiles", params={"max_size_chnage": 0.1}, results_dir=tmp_path)
    with pytest.raises(ValidationError, match="contactability_min must not exceed"):
        run_suite(duck_warehouse, "profiles", params={"contactability_min": 0.9, "contactability_max": 0.5},
                  results_dir=tmp_path)
    assert not list(tmp_path.rglob("*.json"))   # nothing was run or recorded
