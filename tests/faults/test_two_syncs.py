"""Two real `lifeline sync` processes of the same sync at once. While the first runs (its first
Mailchimp request is held by the sandbox, so it cannot finish early however slow the machine is), a
second with `--wait 0` exits at once with a message saying it is running and how to wait; a third
with `--wait 60` starts, then the first is released; the third waits (polling) for the first to
finish, then finds nothing left to send. On PostgreSQL
the sync lock (lifeline_state.sync_locks + an advisory lock) is what holds them back; on DuckDB the
file itself (one writer process)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fault_helpers import MEMBERS, TOKEN, CountingSandbox, mailchimp_members, synced_emails, write_config
from syncs.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sync"))
from sync_helpers import people, set_audience  # noqa: E402

LIFELINE = [sys.executable, "-m", "orchestration.cli"]
BUSY = {"postgres": "sync mailchimp_cart is already running", "duckdb": "is in use by another process"}


def test_a_second_sync_gives_up_or_waits_for_the_first(any_warehouse: Warehouse, tmp_path: Path):
    members = people(MEMBERS)
    set_audience(any_warehouse, members)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TEST_MAILCHIMP_KEY=TOKEN, **any_warehouse.dbt_env())
    with CountingSandbox(tmp_path / "sandbox", token=TOKEN, rate_limits=False,
                         faults={"mailchimp": {"latency_ms": 100}}) as server:
        command = LIFELINE + ["sync", "--config", str(write_config(tmp_path / "syncs.yml", server.base_url))]
        server.gate.clear()  # hold the first sync's requests
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            assert server.wait_for(1, alive=lambda: first.poll() is None), "the first sync ended before sending"
            started = time.monotonic()
            refused = subprocess.run(command + ["--wait", "0"], cwd=tmp_path, env=env, capture_output=True,
                                     text=True, timeout=50)  # under the client's 60 s timeout of the held request
            assert first.poll() is None, "the first sync must still be running"
            assert refused.returncode == 1, refused.stdout + refused.stderr
            said = refused.stdout + refused.stderr
            assert BUSY[any_warehouse.kind] in said and "--wait" in said and "Traceback" not in said, said
            waiter = subprocess.Popen(command + ["--wait", "90"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
        finally:
            server.gate.set()  # release the first sync
        out, err = first.communicate(timeout=120)
        waiter_out, waiter_err = waiter.communicate(timeout=120)
        assert first.returncode == 0, out + err
        assert waiter.returncode == 0, waiter_out + waiter_err
        assert "up to date: nothing to send" in waiter_out, waiter_out  # it ran after the first, not beside it
        assert time.monotonic() - started >= 1.0
        assert mailchimp_members(server.base_url) == {m["email"] for m in members}
        assert synced_emails(any_warehouse, "mailchimp_cart") == {m["email"] for m in members}
