"""The warm dbt server (orchestration/dbt_server.py): a command run through its launcher behaves as
the same command run by the `dbt` executable (output, exit status, the caller's environment and
working directory), commands run side by side, a signal to the launcher reaches the command, and a
launcher without a server says what to do."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestration.dbt_runner import RUN_VARS_ENV, dbt_env, dbt_project_dir
from orchestration.dbt_server import WarmDbt, launcher_script
from syncs.warehouse import Warehouse

DIRECT_DBT = str(Path(sys.executable).parent / "dbt")
SHOW_AS_OF = ["show", "--inline", "select {{ lifeline.as_of() }} as as_of_value"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with WarmDbt.start(tmp_path_factory.mktemp("own_server")) as warm:
        yield warm


def dbt_command(executable: str, args: list[str], warehouse: Warehouse, target: Path, as_of: str,
                ) -> subprocess.CompletedProcess:
    env = dbt_env(warehouse)
    env[RUN_VARS_ENV] = json.dumps({"as_of": as_of})
    project = dbt_project_dir()
    return subprocess.run([executable, *args, "--project-dir", str(project), "--profiles-dir", str(project),
                           "--target-path", str(target)], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)


def body(output: str) -> list[str]:
    """Output lines without their time stamps."""
    return [line[10:] if line[:2].isdigit() and line[2:3] == ":" else line for line in output.splitlines()]


def test_a_command_through_the_server_is_the_same_command(server, tmp_path, dbt_artifacts):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    direct = dbt_command(DIRECT_DBT, SHOW_AS_OF, warehouse, tmp_path / "t1", "2026-03-04 05:06:07")
    warm = dbt_command(str(server.executable), SHOW_AS_OF, warehouse, tmp_path / "t2", "2026-03-04 05:06:07")
    assert direct.returncode == warm.returncode == 0, warm.stdout + warm.stderr
    assert "2026-03-04 05:06:07" in warm.stdout  # the caller's environment reached the command
    assert body(warm.stdout) == body(direct.stdout)
    assert warm.stderr == direct.stderr == ""
    assert (tmp_path / "t2" / "run_results.json").exists()  # relative paths resolve in the caller's cwd


def test_a_failing_command_fails_the_same_way(server, tmp_path):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    broken = ["show", "--inline", "select * from no_such_table"]
    direct = dbt_command(DIRECT_DBT, broken, warehouse, tmp_path / "t1", "2026-01-01 00:00:00")
    warm = dbt_command(str(server.executable), broken, warehouse, tmp_path / "t2", "2026-01-01 00:00:00")
    assert direct.returncode == warm.returncode == 2  # dbt's exit status for a runtime error
    assert "no_such_table" in warm.stdout and body(warm.stdout) == body(direct.stdout)


def test_commands_run_side_by_side_each_with_its_own_environment(server, tmp_path):
    def show(index: int) -> str:
        warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / f"w{index}.duckdb")
        done = dbt_command(str(server.executable), SHOW_AS_OF, warehouse, tmp_path / f"t{index}",
                           f"2026-0{index + 1}-01 00:00:00")
        assert done.returncode == 0, done.stdout
        return done.stdout

    with ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(show, range(3)))
    for index, output in enumerate(outputs):
        assert f"2026-0{index + 1}-01 00:00:00" in output
        assert all(f"2026-0{other + 1}-01" not in output for other in range(3) if other != index)


def test_sigterm_to_the_launcher_stops_the_command(server, tmp_path):
    warehouse = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb")
    env = dbt_env(warehouse)
    project = dbt_project_dir()
    endless = ["show", "--inline", "select count(*) from range(1000000000000)"]  # hours of DuckDB work
    launcher = subprocess.Popen([str(server.executable), *endless, "--project-dir", str(project), "--profiles-dir",
                                 str(project), "--target-path", str(tmp_path / "t")], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        command_pid = wait_for_command(launcher.pid)
        time.sleep(3)  # into the query
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "without an exit status" in stderr, stderr
    deadline = time.monotonic() + 20
    while pid_alive(command_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(command_pid), "the dbt command outlived the SIGTERM sent to its launcher"


def wait_for_command(launcher_pid: int, timeout_s: float = 60) -> int:
    """The pid of the forked command serving this launcher: the server's child whose stdout is the
    launcher's (found through /proc)."""
    ours = os.readlink(f"/proc/{launcher_pid}/fd/1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != launcher_pid:
                try:
                    if (os.readlink(entry / "fd" / "1") == ours
                            and "orchestration.dbt_server" in (entry / "cmdline").read_text()):
                        return int(entry.name)
                except OSError:
                    continue
        time.sleep(0.1)
    raise AssertionError("no forked dbt command appeared for the launcher")


def pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_a_launcher_without_a_server_says_what_to_do(tmp_path):
    script = launcher_script(tmp_path / "nobody.sock", tmp_path / "bin")
    done = subprocess.run([str(script), "ls"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "is not answering" in done.stderr and "unset LIFELINE_DBT_EXECUTABLE" in done.stderr
