"""Concurrency faults: the DuckDB file held by another process, and two runs of one sync.

A second command either waits (`--wait SECONDS`) or exits with a message naming the file and what
to do; it never half-writes. Real processes hold the locks: DuckDB's own file lock, and the sync
lock row in lifeline_state."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from syncs.state import SyncLocked, acquire_lock, ensure_state, release_lock
from syncs.warehouse import Warehouse, WarehouseBusy

ROOT = Path(__file__).resolve().parents[2]
LIFELINE = [sys.executable, "-m", "orchestration.cli"]


def hold_file(path: Path, seconds: float) -> subprocess.Popen:
    """Another process opens the DuckDB file for writing and keeps it for `seconds`."""
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        print("holding", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.fixture
def warehouse_file(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create table raw.customers as select 'c1' as customer_id")
    con.close()
    return path


def run_cli(args: list[str], path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LIFELINE_DUCKDB_PATH=str(path), PYTHONPATH=str(ROOT))
    return subprocess.run(LIFELINE + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_commands_on_a_locked_file_exit_clearly_and_change_nothing(warehouse_file: Path, tmp_path: Path):
    data = tmp_path / "data" / "customers"
    data.mkdir(parents=True)
    (data / "part.csv").write_text("customer_id,email\nc2,b@example.com\n")
    holder = hold_file(warehouse_file, 600)  # killed below; long so a slow machine cannot outlast it
    try:
        for args in (["load", str(tmp_path / "data")], ["build"], ["sync", "--dry-run"],
                     ["forget", "--email", "b@example.com"]):
            done = run_cli(args, warehouse_file, tmp_path)
            assert done.returncode != 0, args
            assert "is in use by another process" in done.stderr and str(warehouse_file) in done.stderr, done.stderr
            assert "--wait" in done.stderr and "Traceback" not in done.stderr, done.stderr
    finally:
        holder.kill()
        holder.wait()
    con = duckdb.connect(str(warehouse_file), read_only=True)
    assert con.execute("select customer_id from raw.customers").fetchall() == [("c1",)]  # the load did not happen
    con.close()


def test_wait_until_available_waits_for_the_holder(warehouse_file: Path):
    holder = hold_file(warehouse_file, 2)
    warehouse = Warehouse(kind="duckdb", duckdb_path=warehouse_file)
    started = time.monotonic()
    warehouse.wait_until_available(wait_s=30, poll_s=0.2)
    assert time.monotonic() - started >= 1.0  # it did wait for the other process
    holder.wait(timeout=10)
    holder2 = hold_file(warehouse_file, 30)
    try:
        with pytest.raises(WarehouseBusy, match="in use by another process"):
            warehouse.wait_until_available(wait_s=0.5, poll_s=0.1)
    finally:
        holder2.kill()
        holder2.wait()


def _lock_held_by_live_process(engine: sa.Engine, name: str, pid: int) -> None:
    with engine.connect() as conn:
        ensure_state(conn)
        conn.execute(sa.text("insert into lifeline_state.sync_locks values (:n, :o, current_timestamp)"),
                     {"n": name, "o": f"{socket.gethostname()}:{pid}"})
        conn.commit()


def test_second_run_of_a_sync_waits_for_the_lock_or_gives_up(any_warehouse: Warehouse):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    engine = any_warehouse.engine()
    try:
        _lock_held_by_live_process(engine, "s1", sleeper.pid)
        with engine.connect() as conn:
            started = time.monotonic()
            with pytest.raises(SyncLocked, match="--wait"):
                acquire_lock(conn, "s1", wait_s=1.0, poll_s=0.2)
            assert time.monotonic() - started >= 1.0
        sleeper.kill()  # the holder goes away while the second run waits: the wait ends with the lock
        sleeper.wait()
        with engine.connect() as conn:
            acquire_lock(conn, "s1", wait_s=10, poll_s=0.2)
            owner = conn.execute(sa.text("select owner from lifeline_state.sync_locks where sync_name = 's1'")).scalar()
            assert owner.endswith(f":{os.getpid()}")
            release_lock(conn, "s1")
    finally:
        sleeper.kill()
        engine.dispose()
