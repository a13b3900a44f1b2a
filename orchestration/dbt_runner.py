"""Runs dbt for Lifeline's project against the selected warehouse.

dbt runs as a subprocess of the same virtual environment: the CLI, Dagster (through dagster-dbt)
and the tests all go through it, so the DuckDB file is never opened by two writers in one process.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from syncs.warehouse import Warehouse

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class DbtError(RuntimeError):
    """dbt failed; the message carries the failing nodes and dbt's own words."""


def dbt_project_dir() -> Path:
    return Path(os.environ.get("LIFELINE_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"))


def dbt_executable() -> str:
    """LIFELINE_DBT_EXECUTABLE when set (e.g. the warm launcher of orchestration/dbt_server.py), else
    the `dbt` of this virtual environment, else `dbt` on PATH."""
    override = os.environ.get("LIFELINE_DBT_EXECUTABLE")
    if override:
        return override
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def telemetry_off_env() -> dict[str, str]:
    """Environment that turns off the telemetry of dbt, Dagster and Great Expectations."""
    return {"DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "GX_ANALYTICS_ENABLED": "False",
            "DAGSTER_DISABLE_TELEMETRY": "1"}


def format_as_of(as_of: datetime) -> str:
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None)
    return as_of.strftime("%Y-%m-%d %H:%M:%S")


def dbt_vars(as_of: datetime | None, extra: Mapping[str, object] | None = None) -> dict[str, object]:
    values: dict[str, object] = {"as_of": format_as_of(as_of or datetime.now(timezone.utc))}
    values.update(extra or {})
    return values


# Vars whose value changes with every run. They travel in the environment (RUN_VARS_ENV, a JSON
# object read by the macro run_var in macros/cross_db.sql while executing), not in --vars: dbt
# re-parses the whole project when a --vars value differs from its last parse (3-4 s a run), and
# as_of differs every run.
RUN_VARS = ("as_of", "partition_start", "partition_end", "partition_new_rows")
RUN_VARS_ENV = "LIFELINE_RUN_VARS"


def dbt_invocation(values: Mapping[str, object]) -> tuple[list[str], dict[str, str]]:
    """The --vars arguments (project vars) and the environment (the per-run vars, RUN_VARS_ENV) that
    pass `values` to one dbt invocation."""
    run = {k: v for k, v in values.items() if k in RUN_VARS}
    project = {k: v for k, v in values.items() if k not in RUN_VARS}
    return (["--vars", json.dumps(project)] if project else []), {RUN_VARS_ENV: json.dumps(run)}


@dataclass
class DbtResult:
    args: list[str]
    returncode: int
    output: str
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def failures(self) -> list[str]:
        return [line for line in self.output.splitlines() if " ERROR " in line or "FAIL " in line or "Failure in" in line
                or "Error in" in line]


TARGET_ROOT_ENV = "LIFELINE_DBT_TARGET_ROOT"  # where run_dbt keeps its per-target artifacts folders


def dbt_env(warehouse: Warehouse, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(warehouse.dbt_env())
    env.update(telemetry_off_env())
    return env


def connection_key(warehouse: Warehouse, var_args: Sequence[str] = ()) -> str:
    """A short name for what dbt's partial parse is keyed on besides the files: the connection (the
    DuckDB file, the PostgreSQL server, user and database) and the --vars."""
    env = warehouse.dbt_env()
    env.pop("PGPASSWORD", None)  # not part of dbt's profile hash, and no secret goes into a path
    described = json.dumps([sorted(env.items()), list(var_args)])
    return hashlib.sha1(described.encode()).hexdigest()[:12]


def target_folder(warehouse: Warehouse, root: str | None, var_args: Sequence[str] = ()) -> Path:
    """Where dbt keeps its artifacts and partial_parse.msgpack for this run. dbt re-parses the whole
    project (3-4 s of CPU) when that file was written for another target, connection or --vars.
    Without `root`: target/<target>, one folder per target, so runs that alternate DuckDB and
    PostgreSQL from one checkout (a migration) keep theirs. Under `root` (LIFELINE_DBT_TARGET_ROOT:
    processes that build many warehouses, such as each test process): one folder per target,
    connection and --vars, so alternating warehouses (a test's incremental warehouse and its
    full-refresh twin, a template and the copies made from it) each keep theirs too."""
    if not root:
        return Path("target") / warehouse.dbt_target
    return Path(root) / f"{warehouse.dbt_target}-{connection_key(warehouse, var_args)}"


def run_dbt(warehouse: Warehouse, command: str, args: Sequence[str] = (), *, as_of: datetime | None = None,
            extra_vars: Mapping[str, object] | None = None, check: bool = True, stream: bool = False) -> DbtResult:
    project = dbt_project_dir()
    full = [dbt_executable(), command, "--project-dir", str(project), "--profiles-dir", str(project),
            "--target", warehouse.dbt_target]
    env = dbt_env(warehouse)
    env.pop(RUN_VARS_ENV, None)
    var_args: list[str] = []
    if command not in ("deps", "clean", "parse", "debug"):
        var_args, run_env = dbt_invocation(dbt_vars(as_of, extra_vars))
        full += var_args
        env.update(run_env)
    full += list(args)
    if "--target-path" not in args and "DBT_TARGET_PATH" not in env:
        full += ["--target-path", str(target_folder(warehouse, env.get(TARGET_ROOT_ENV), var_args))]
    started = time.perf_counter()
    proc = subprocess.Popen(full, cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if stream:
            sys.stdout.write(line)
    # wait4 gives this child's own peak RSS (kilobytes on Linux), for the benchmarks.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Through a launcher (LIFELINE_DBT_EXECUTABLE) dbt runs in another process tree: its peak is unknown.
    peak_mb = 0.0 if env.get("LIFELINE_DBT_EXECUTABLE") else usage.ru_maxrss / 1024
    result = DbtResult(full, proc.returncode, "".join(lines), time.perf_counter() - started, peak_mb)
    if check and proc.returncode != 0:
        tail = "\n".join(result.failures[-20:]) or "".join(lines[-30:])
        raise DbtError(f"dbt {command} failed (exit {proc.returncode}) on {warehouse.describe()}:\n{tail}")
    return result
