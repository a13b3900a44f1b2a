"""Seeded SIGKILL trials of a trigger sync: `lifeline sync` (a real process) killed when the N-th
Twilio request of its run arrives, N drawn from the seeded stream up to the messages it has to
send, while people enter and re-enter the audience; then rerun to completion.

After every kill no trigger key claims a message Twilio lacks. After every rerun each phone has
exactly one message per occurrence (person, entered_at) ever in the audience: zero duplicates,
zero misses, every key 'sent'. Counted and printed: kills, kills with a request in flight, kills
that left pending keys whose message Twilio already had (sent, not yet confirmed: the case the
pending-key check exists for) and the reruns' confirmations of them."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from fault_helpers import CountingSandbox

from syncs.config import load_syncs
from syncs.state import ensure_state
from syncs.trigger import run_trigger

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sync"))
from trigger_helpers import (
    ENTERED,
    ENV,
    TOKEN,
    key_states,
    messages,
    set_sms_audience,
    sms_people,
    write_config,
)

LIFELINE = str(Path(sys.executable).parent / "lifeline")
TRIALS = 5
SEED = 20261124


def test_seeded_kills_of_a_trigger_sync_send_no_duplicate(duck_warehouse, tmp_path):
    rng = random.Random(SEED)
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
    engine.dispose()
    counts = {"trials": TRIALS, "seed": SEED, "kills": 0, "finished_before_kill": 0, "kills_request_in_flight": 0,
              "kills_with_unconfirmed_sends": 0, "confirmed_by_reruns": 0,
              "duplicates": 0, "reruns_converged": 0}
    env = dict(os.environ, **ENV, LIFELINE_DUCKDB_PATH=str(duck_warehouse.duckdb_path), LIFELINE_WAREHOUSE="duckdb")
    with CountingSandbox(tmp_path / "sandbox", token=TOKEN, rate_limits=False,
                         faults={"twilio": {"latency_ms": 15}}) as server:
        config = write_config(tmp_path / "syncs.yml", server.base_url)
        [sync] = load_syncs(config)
        members = {p["profile_id"]: p for p in sms_people(30)}
        occurrences: set[tuple[str, object]] = set()
        for trial in range(TRIALS):
            # people re-enter (a new entered_at: a new occurrence), join, and leave
            for pid in rng.sample(sorted(members), k=min(8, len(members))):
                members[pid] = dict(members[pid], entered_at=ENTERED + timedelta(days=trial + 1))
            for p in sms_people(rng.randrange(5, 15), start=rng.randrange(30, 200)):
                members.setdefault(p["profile_id"], p)
            for pid in rng.sample(sorted(members), k=3):
                del members[pid]
            set_sms_audience(duck_warehouse, list(members.values()))
            due = {(p["profile_id"], p["entered_at"]) for p in members.values()} - occurrences
            occurrences |= due
            kill_at = server.requests + rng.randint(1, max(1, len(due)))
            proc = subprocess.Popen([LIFELINE, "sync", "--config", str(config)], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if server.wait_for(kill_at, alive=lambda p=proc: p.poll() is None):
                counts["kills_request_in_flight"] += server.in_flight > 0
                proc.kill()
                counts["kills"] += 1
            else:
                counts["finished_before_kill"] += 1
            proc.wait()

            held = {m["sid"] for m in messages(server.base_url)}
            states = key_states(duck_warehouse)
            claimed = {d for s, d in states.values() if s == "sent"}
            assert claimed <= held, f"trial {trial}: keys claim messages Twilio does not have"
            pending = [k for k, (s, _) in states.items() if s == "pending"]
            rerun = run_trigger(duck_warehouse, sync, env=ENV, progress=False)
            assert rerun.status == "success", f"trial {trial}: {rerun.message}"
            counts["confirmed_by_reruns"] += rerun.confirmed
            counts["kills_with_unconfirmed_sends"] += rerun.confirmed > 0
            assert rerun.confirmed <= len(pending)

            expected = Counter(members_phone(pid) for pid, _ in occurrences)
            got = Counter(m["to"] for m in messages(server.base_url))
            counts["duplicates"] += sum(max(0, got[p] - n) for p, n in expected.items())
            assert got == expected, f"trial {trial}: messages per phone differ from occurrences per person"
            assert {s for s, _ in key_states(duck_warehouse).values()} == {"sent"}
            counts["reruns_converged"] += 1
    (tmp_path / "trigger_kills.json").write_text(json.dumps(counts, indent=2))
    print("trigger kill trials:", json.dumps(counts))
    assert counts["duplicates"] == 0 and counts["reruns_converged"] == TRIALS
    assert counts["kills"] >= TRIALS // 2, counts  # the kills really landed inside runs


def members_phone(profile_id: str) -> str:
    """sms_people's phone for a profile id (p_00012 -> +12015550012)."""
    return f"+1201555{int(profile_id.removeprefix('p_')):04d}"
