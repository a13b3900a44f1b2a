"""The `lifeline` command: --help everywhere, clear errors, and load + build through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from orchestration.cli import main

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"
COMMANDS = ["demo", "load", "build", "sync", "sandbox", "ui", "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: main" in result.output or "Usage: lifeline" in result.output or "Usage:" in result.output


def test_top_level_help_lists_the_contract_commands():
    result = CliRunner().invoke(main, ["--help"])
    for command in COMMANDS:
        assert command in result.output


@pytest.fixture
def env(tmp_path):
    return {"LIFELINE_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "LIFELINE_HOME": str(tmp_path / ".lifeline"),
            "LIFELINE_WAREHOUSE": "duckdb"}


def test_load_reports_rows_and_keeps_extra_columns(env, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "events.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"event_id": "j1", "event_type": "page_view", "occurred_at": "2026-10-01T10:00:00Z",
         "properties": {"path": "/a", "nested": {"x": 1}}, "utm_campaign": "fall"},
        {"event_id": "j2", "event_type": "page_view", "occurred_at": "2026-10-01T10:01:00Z", "value": 12.5},
    ]) + "\n")
    result = CliRunner().invoke(main, ["load", str(data), "--replace"], env=env)
    assert result.exit_code == 0, result.output
    assert "raw.events: 2 rows" in result.output and "utm_campaign" in result.output
    con = duckdb.connect(env["LIFELINE_DUCKDB_PATH"], read_only=True)
    props, value, utm = con.execute("select properties, value, utm_campaign from raw.events order by event_id").fetchall()[0]
    assert json.loads(props) == {"path": "/a", "nested": {"x": 1}} and utm == "fall"
    # Tables not given are created empty, so a build can run.
    assert con.execute("select count(*) from raw.customers").fetchone()[0] == 0
    con.close()


def test_load_of_a_missing_folder_is_a_clear_error(env, tmp_path):
    result = CliRunner().invoke(main, ["load", str(tmp_path / "nope")], env=env)
    assert result.exit_code == 1
    assert "no such file or folder" in result.output


def test_load_appends_without_replace(env):
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(MINI), "--replace"], env=env).exit_code == 0
    assert runner.invoke(main, ["load", str(MINI)], env=env).exit_code == 0
    con = duckdb.connect(env["LIFELINE_DUCKDB_PATH"], read_only=True)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == 8
    con.close()


def test_bad_as_of_is_rejected(env):
    result = CliRunner().invoke(main, ["build", "--as-of", "next tuesday"], env=env)
    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_unknown_warehouse_is_a_clear_error(env):
    result = CliRunner().invoke(main, ["load", str(MINI)], env={**env, "LIFELINE_WAREHOUSE": "oracle"})
    assert result.exit_code == 1 and "'duckdb'" in result.output and "'postgres'" in result.output


def test_build_passes_dbt_vars_through(env):
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(MINI), "--replace"], env=env).exit_code == 0
    result = runner.invoke(main, ["build", "--as-of", "2026-11-01T00:00:00Z", "--skip-checks",
                                  "--var", "holdout_percent=100"], env=env)
    assert result.exit_code == 0, result.output
    con = duckdb.connect(env["LIFELINE_DUCKDB_PATH"], read_only=True)
    members, held_out = con.execute("select count(*), count(*) filter (where is_holdout) from audience_members").fetchone()
    con.close()
    assert members > 0 and held_out == members  # every member held out: the var reached dbt


@pytest.mark.parametrize("args, message", [
    (["build", "--var", "no_equals_sign"], "is not NAME=VALUE"),
    (["build", "--var", "as_of=2026-01-01"], "use --as-of"),
    (["sandbox", "--faults", "klaviyo"], "bad faults entry"),
])
def test_bad_options_are_clear_errors(env, args, message):
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2 and message in result.output
