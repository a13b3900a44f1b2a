"""20 seeded SIGKILL trials: `lifeline sync` (a real process) killed when the N-th Klaviyo request of
its run arrives (N drawn from the seeded stream, up to the requests a whole run needs), while the
audience changes under it; then rerun to completion.

After every kill no state row claims a member the destination lacks (the state may lag behind the
list, never lead it: a member being removed may still be claimed). After every rerun the Klaviyo
list equals the audience exactly and the state equals both. Counted and written to
kill_trials.json in the test's folder, and printed: trials, kills, kills with a request in flight,
kills after which the list held rows the state had not recorded (a batch sent, not committed),
and the rows the reruns re-sent because of that."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from fault_helpers import CountingSandbox, synced_emails
from syncs.config import load_syncs
from syncs.engine import run_sync
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


def hold(warehouse) -> sa.Engine:
    """An open connection to the DuckDB file: another process cannot open it until `.dispose()`."""
    engine = warehouse.engine()
    engine.connect()
    return engine


def test_twenty_seeded_kills_mid_batch_converge_with_honest_state(duck_warehouse, tmp_path):
    rng = random.Random(SEED)
    engine = duck_warehouse.engine()
    with engine.connect() as conn:  # a kill before the first run creates it must still be checkable
        ensure_state(conn)
    engine.dispose()
    counts = {"trials": TRIALS, "seed": SEED, "kills": 0, "finished_before_kill": 0, "kills_request_in_flight": 0,
              "kills_mid_batch": 0, "resent_rows": 0, "state_rows_ahead_of_destination": 0, "reruns_converged": 0}
    env = dict(os.environ, TEST_KLAVIYO_KEY=TOKEN, LIFELINE_DUCKDB_PATH=str(duck_warehouse.duckdb_path),
               LIFELINE_WAREHOUSE="duckdb")
    with CountingSandbox(tmp_path / "sandbox", token=TOKEN, rate_limits=False,
                         faults={"klaviyo": {"latency_ms": 20}}) as server:
        config = write_config(tmp_path / "syncs.yml", server.base_url, max_remove_share=1, max_add_multiple=100)
        [sync] = load_syncs(config)

        def start() -> subprocess.Popen:
            """`lifeline sync --wait` starts (Python imports take ~1.5 s) while the test still holds the
            file; it proceeds once the test lets go, so its start overlaps the previous trial's checks."""
            return subprocess.Popen([LIFELINE, "sync", "--wait", "60", "--config", str(config)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        gate = hold(duck_warehouse)  # holds the file: the next sync waits behind it
        proc = start()
        members, run_requests = people(600), 6
        for trial in range(TRIALS):
            # the audience moves: some leave, some join
            members = [m for m in members if rng.random() > 0.15] + people(rng.randrange(100, 500),
                                                                           start=rng.randrange(0, 2_000))
            members = list({m["profile_id"]: m for m in members}.values())
            set_audience(duck_warehouse, members)
            wanted = {m["email"] for m in members}
            kill_at = server.requests + rng.randint(1, run_requests)
            gate.dispose()
            if server.wait_for(kill_at, alive=lambda p=proc: p.poll() is None):
                in_flight = server.in_flight
                proc.kill()
                counts["kills"] += 1
                counts["kills_request_in_flight"] += in_flight > 0
            else:
                counts["finished_before_kill"] += 1
            proc.wait()
            gate = hold(duck_warehouse)
            following = start() if trial + 1 < TRIALS else None
            claimed, present = synced_emails(duck_warehouse), in_list(server.base_url)
            ahead = (claimed - present) & wanted  # a claimed member that is gone yet wanted: a lie
            unrecorded = (present & wanted) - claimed  # sent, acknowledged, killed before the commit
            counts["state_rows_ahead_of_destination"] += len(ahead)
            counts["kills_mid_batch"] += bool(unrecorded)
            counts["resent_rows"] += len(unrecorded)
            assert not ahead, f"trial {trial}: state claims {len(ahead)} members the list does not have"
            before = server.requests
            rerun = run_sync(duck_warehouse, sync, env={"TEST_KLAVIYO_KEY": TOKEN}, progress=False)
            run_requests = max(6, server.requests - before + 2)
            assert rerun.status == "success", f"trial {trial}: {rerun.message}"
            assert list_members(server.base_url) == wanted, f"trial {trial}: the list differs from the audience"
            assert synced_emails(duck_warehouse) == wanted, f"trial {trial}: the state differs from the audience"
            counts["reruns_converged"] += 1
            proc = following
        gate.dispose()
    (tmp_path / "kill_trials.json").write_text(json.dumps(counts, indent=2))
    print("kill trials:", json.dumps(counts))
    assert counts["reruns_converged"] == TRIALS
    assert counts["kills"] >= TRIALS // 2, counts  # the kills really landed inside runs,
    assert counts["kills_request_in_flight"] >= counts["kills"] // 2, counts  # mostly with a request on the wire
