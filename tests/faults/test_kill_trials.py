"""20 seeded SIGKILL trials: `lifeline sync` killed at a random moment while the audience changes
under it, then rerun. After every kill, no state row claims a member the destination does not
have; after every rerun, the Klaviyo list equals the audience exactly and the state equals both.
The counts (trials, kills that landed mid-run, members in flight) are printed and written to
kill_trials.json in the test's folder."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from syncs.sandbox.server import run_in_thread
from syncs.state import ensure_state

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sync"))
from sync_helpers import people, set_audience  # noqa: E402
from test_klaviyo_sync import TOKEN, list_members, write_config  # noqa: E402
LIFELINE = str(Path(sys.executable).parent / "lifeline")
TRIALS = 20
SEED = 20261123


def in_list(base_url: str) -> set[str]:
    """The list's members; none while a killed first run had not created the list yet."""
    try:
        return list_members(base_url)
    except ValueError:
        return set()


def synced_emails(warehouse) -> set[str]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        keys = {k for (k,) in conn.execute(sa.text(
            "select key from lifeline_state.sync_state where sync_name = 'klaviyo_cart' and status = 'synced'"))}
    engine.dispose()
    return {f"person{int(k.removeprefix('p_'))}@example.com" for k in keys}


def test_twenty_seeded_kills_converge_with_honest_state(duck_warehouse, tmp_path):
    rng = random.Random(SEED)
    engine = duck_warehouse.engine()
    with engine.connect() as conn:  # a kill before the first run creates it must still be checkable
        ensure_state(conn)
    engine.dispose()
    counts = {"trials": TRIALS, "seed": SEED, "kills_mid_run": 0, "finished_before_kill": 0,
              "state_rows_ahead_of_destination": 0, "reruns_converged": 0, "max_in_flight": 0}
    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, rate_limits=False,
                       faults={"klaviyo": {"latency_ms": 30}}) as server:
        config = write_config(tmp_path / "syncs.yml", server.base_url, max_remove_share=1, max_add_multiple=100)
        env = dict(os.environ, TEST_KLAVIYO_KEY=TOKEN, LIFELINE_DUCKDB_PATH=str(duck_warehouse.duckdb_path),
                   LIFELINE_WAREHOUSE="duckdb")
        members = people(1_500)
        for trial in range(TRIALS):
            # the audience moves: some leave, some join, some change
            start = rng.randrange(0, 4_000)
            members = [m for m in members if rng.random() > 0.15] + people(rng.randrange(200, 1_200), start=start)
            members = list({m["profile_id"]: m for m in members}.values())
            set_audience(duck_warehouse, members)
            wanted = {m["email"] for m in members}
            proc = subprocess.Popen([LIFELINE, "sync", "--config", str(config)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 3.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                counts["kills_mid_run"] += 1
            else:
                counts["finished_before_kill"] += 1
            proc.wait()
            # No state row may claim a member the destination lacks (it may lag behind, never lead).
            claimed, present = synced_emails(duck_warehouse), in_list(server.base_url)
            ahead = claimed - present
            counts["state_rows_ahead_of_destination"] += len(ahead)
            counts["max_in_flight"] = max(counts["max_in_flight"], len(wanted ^ present))
            assert not ahead, f"trial {trial}: state claims {len(ahead)} members the list does not have"
            rerun = subprocess.run([LIFELINE, "sync", "--config", str(config)], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=300)
            assert rerun.returncode == 0, f"trial {trial}: {rerun.stdout}{rerun.stderr}"
            assert list_members(server.base_url) == wanted, f"trial {trial}: the list differs from the audience"
            assert synced_emails(duck_warehouse) == wanted, f"trial {trial}: the state differs from the audience"
            counts["reruns_converged"] += 1
    (tmp_path / "kill_trials.json").write_text(json.dumps(counts, indent=2))
    print("kill trials:", json.dumps(counts))
    assert counts["reruns_converged"] == TRIALS
    assert counts["kills_mid_run"] >= TRIALS // 2, counts  # the kills really landed inside runs
