"""The engine runs DuckDB single-threaded and with rare checkpoints while it sends pages, and
restores both settings whether the sync succeeds or a DuckDB statement fails mid-send (the failure
is what the caller sees)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sync_helpers import people, set_audience

import syncs.engine as engine_module
from syncs.config import load_syncs
from syncs.engine import run_sync, send_settings
from syncs.state import mark_synced


def file_sync(tmp_path: Path):
    path = tmp_path / "syncs.yml"
    path.write_text(f"""syncs:
  - name: threads_file
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: file, base_url: "{tmp_path / 'out'}", format: csv}}
""")
    [sync] = load_syncs(path)
    return sync


def current_threads(conn) -> int:
    return int(conn.exec_driver_sql("select current_setting('threads')").scalar())


def checkpoint_threshold(conn) -> str:
    return conn.exec_driver_sql("select current_setting('checkpoint_threshold')").scalar()


def synced_keys(warehouse) -> set[str]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        keys = {k for (k,) in conn.execute(sa.text("select key from lifeline_state.sync_state "
                                                   "where sync_name = 'threads_file'"))}
    engine.dispose()
    return keys


def test_a_duckdb_error_while_sending_is_raised_and_a_rerun_converges(duck_warehouse, tmp_path,
                                                                                 monkeypatch):
    set_audience(duck_warehouse, people(5))
    sync = file_sync(tmp_path)
    seen: list[tuple[int, str]] = []  # DuckDB threads and checkpoint threshold while each page is marked

    def failing_mark_synced(conn, sync_name, rows, new=None, clear_rejections=True, new_unique=True):
        seen.append((current_threads(conn), checkpoint_threshold(conn)))
        conn.exec_driver_sql("insert into lifeline_state.sync_locks values ('threads_file', 'x', now())")  # duplicate key

    monkeypatch.setattr(engine_module, "mark_synced", failing_mark_synced)
    with pytest.raises(sa.exc.DBAPIError, match="(?i)constraint|duplicate"):
        run_sync(duck_warehouse, sync, env={}, progress=False)
    # single-threaded, checkpoints rare while sending (tried again with every row upserted)
    assert seen and set(seen) == {(1, "1.0 GiB")}
    monkeypatch.setattr(engine_module, "mark_synced", mark_synced)
    result = run_sync(duck_warehouse, sync, env={}, progress=False)  # the lock was released, nothing was marked
    assert result.status == "success" and result.adds == 5
    assert synced_keys(duck_warehouse) == {f"p_{i:05d}" for i in range(5)}


def test_send_settings_are_restored_after_an_aborted_transaction(duck_warehouse):
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        conn.exec_driver_sql("set threads = 2")
        conn.exec_driver_sql("set checkpoint_threshold = '32MiB'")
        before = checkpoint_threshold(conn)
        conn.exec_driver_sql("create table t (a integer primary key)")
        conn.exec_driver_sql("insert into t values (1)")
        with pytest.raises(sa.exc.DBAPIError, match="(?i)constraint|duplicate"):
            with send_settings(conn):
                assert (current_threads(conn), checkpoint_threshold(conn)) == (1, "1.0 GiB")
                conn.exec_driver_sql("insert into t values (1)")
        assert (current_threads(conn), checkpoint_threshold(conn)) == (2, before)
        with send_settings(conn):
            assert current_threads(conn) == 1
        assert (current_threads(conn), checkpoint_threshold(conn)) == (2, before)
    engine.dispose()
