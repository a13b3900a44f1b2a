"""PostgreSQL restarted under a running `lifeline sync` (a real process): the server goes away while
the third of six Mailchimp batches is on the wire (the sandbox holds that request until the restart
is done, so a slow restart cannot let the sync finish first), so the sync loses its connection between a send
and the state commit. The run must fail with a clear message (no traceback), no state row may
claim a member Mailchimp does not hold, and the rerun must converge to exactly the audience."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fault_helpers import MEMBERS, TOKEN, CountingSandbox, mailchimp_members, synced_emails, write_config
from syncs.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sync"))
from sync_helpers import people, set_audience  # noqa: E402

LIFELINE = [sys.executable, "-m", "orchestration.cli"]


def test_postgres_restart_mid_sync_fails_clearly_and_the_rerun_converges(pg_server, pg_warehouse: Warehouse,
                                                                         tmp_path: Path):
    members = people(MEMBERS)
    wanted = {m["email"] for m in members}
    set_audience(pg_warehouse, members)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TEST_MAILCHIMP_KEY=TOKEN, **pg_warehouse.dbt_env())
    with CountingSandbox(tmp_path / "sandbox", token=TOKEN, rate_limits=False,
                         faults={"mailchimp": {"latency_ms": 50}}) as server:
        config = write_config(tmp_path / "syncs.yml", server.base_url)
        command = LIFELINE + ["sync", "--config", str(config)]
        server.hold_from = 3
        server.gate.clear()
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert server.wait_for(3, alive=lambda: proc.poll() is None), "the sync ended before its third batch"
            pg_server.restart()  # fast shutdown: every session is terminated
        finally:
            server.gate.set()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, out + err
        assert "Traceback" not in err and "lost its connection to the warehouse" in err, err
        assert "rerun" in err, err
        claimed, present = synced_emails(pg_warehouse, "mailchimp_cart"), mailchimp_members(server.base_url)
        assert claimed <= present, f"{len(claimed - present)} state rows claim members Mailchimp lacks"
        assert 0 < len(claimed) < MEMBERS  # batches before the restart were recorded, not the rest
        rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert mailchimp_members(server.base_url) == wanted
        assert synced_emails(pg_warehouse, "mailchimp_cart") == wanted
