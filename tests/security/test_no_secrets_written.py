"""Tokens never appear in what a run writes: CLI output, any text column of any warehouse table
(marts, lifeline_state, dq results), or any file under the project-local state folder. Canary
values are planted as the API keys, then a successful and a failing sync run through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from syncs.sandbox.server import run_in_thread

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "fixtures" / "mini"
GOOD = "sk-canary-GOOD-7f3a91c2e4"
WRONG = "sk-canary-WRONG-0b55d8e1aa"


def lifeline(args: list[str], env: dict, cwd: Path) -> str:
    done = subprocess.run([str(Path(sys.executable).parent / "lifeline"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    return done.stdout + done.stderr


def test_no_token_in_output_state_or_files(tmp_path):
    home = tmp_path / ".lifeline"
    warehouse = tmp_path / "w.duckdb"
    with run_in_thread(tmp_path / "sandbox", port=0, token=GOOD, rate_limits=False) as sandbox:
        env = dict(os.environ, LIFELINE_DUCKDB_PATH=str(warehouse), LIFELINE_HOME=str(home),
                   LIFELINE_WAREHOUSE="duckdb", KLAVIYO_API_KEY=GOOD,
                   LIFELINE_KLAVIYO_BASE_URL=f"{sandbox.base_url}/klaviyo")
        output = lifeline(["load", str(MINI), "--replace"], env, tmp_path)
        output += lifeline(["build", "--as-of", "2026-11-01T00:00:00Z"], env, tmp_path)
        # First with a wrong key (there is a diff, so the platform is called and refuses), then right.
        failing = lifeline(["sync", "--config", str(ROOT / "syncs.yml")], dict(env, KLAVIYO_API_KEY=WRONG), tmp_path)
        output += lifeline(["sync", "--config", str(ROOT / "syncs.yml")], env, tmp_path)
    assert "success (+" in output and "refused the API key" in failing  # both paths really ran
    for canary in (GOOD, WRONG):
        assert canary not in output + failing

    con = duckdb.connect(str(warehouse), read_only=True)
    columns = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                          "where data_type = 'VARCHAR'").fetchall()
    runs = con.execute("select count(*) from lifeline_state.sync_runs").fetchone()[0]
    assert runs >= 12 and len(columns) > 100
    for schema, table, column in columns:
        hits = con.execute(f'select count(*) from "{schema}"."{table}" where "{column}" like ? or "{column}" like ?',
                           [f"%{GOOD}%", f"%{WRONG}%"]).fetchone()[0]
        assert hits == 0, f"a token is stored in {schema}.{table}.{column}"
    con.close()

    files = [p for p in home.rglob("*") if p.is_file()]
    assert files, "the run wrote no project-local files to scan"
    for path in files:
        data = path.read_bytes()
        assert GOOD.encode() not in data and WRONG.encode() not in data, f"a token is written in {path}"
