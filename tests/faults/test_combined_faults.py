"""All of the sandbox's faults at once: 10% of Klaviyo requests answered 503, 8% dropped without a
response, 8% answered with Klaviyo's own 429 (Retry-After), and slow phases in which every request
takes longer than the client waits (timeouts). Four rounds of a changing audience (adds and
removals); each round's sync must converge: the Klaviyo list equals the audience and the state
equals the list, after at most a few reruns.

The client's 60 s timeout is capped at 1 s in this test (the real client and server run, only the
number is smaller) so that a latency above it is affordable; a timed-out request is still
processed by the sandbox after the client gave up, as a real platform would. Which faults the
client met is counted from urllib3's retries and printed with the rounds and reruns."""
from __future__ import annotations

import json
import random
import sys
import threading
from collections import Counter
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from fault_helpers import synced_emails
from syncs.config import load_syncs
from syncs.engine import run_sync
from syncs.http import CountingRetry
from syncs.sandbox.server import run_in_thread

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "sync"))
from sync_helpers import people, set_audience  # noqa: E402
from test_klaviyo_sync import TOKEN, list_members, write_config  # noqa: E402

FAULTS = {"error_rate": 0.10, "drop_rate": 0.08, "burst_429": 0.08}
CLIENT_TIMEOUT_S = 1.0
SLOW_MS = 2_500      # latency of a slow phase: above the client's timeout
MIN_ROUNDS = 4
MAX_ROUNDS = 12      # rounds go on (up to this) until the client has met every kind of fault
MAX_RUNS = 4         # per round: the first run plus reruns
SEED = 8


def _phases(base_url: str, stop: threading.Event, rng: random.Random, counts: Counter, seed: int) -> None:
    """Every 0.5 s: a slow phase (30%) or a normal one, the other faults always on. The dice are
    seeded once per round; later toggles keep rolling the same stream."""
    body: dict = {"fault_seed": seed}
    while not stop.is_set():
        slow = rng.random() < 0.3
        counts["slow_phases"] += slow
        body["klaviyo"] = dict(FAULTS, latency_ms=SLOW_MS if slow else 0)
        requests.post(f"{base_url}/_sandbox/faults", json=body, timeout=5)
        body = {}
        stop.wait(0.5)


def _kinds_met(met: Counter) -> dict[str, int]:
    return {
        "timeout": sum(n for cause, n in met.items() if "Timeout" in cause),
        "dropped": sum(n for cause, n in met.items() if cause in ("ProtocolError", "RemoteDisconnected",
                                                                  "ConnectionResetError", "NewConnectionError")),
        "http_503": met["http_503"],
        "http_429": met["http_429"],
    }


def test_sync_converges_under_5xx_timeouts_drops_and_429_bursts_at_once(duck_warehouse, tmp_path, monkeypatch):
    met: Counter = Counter()
    real_increment = CountingRetry.increment

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        met[type(error).__name__ if error is not None else f"http_{response.status}"] += 1
        return real_increment(self, method, url, response, error, _pool, _stacktrace)

    real_send = HTTPAdapter.send

    def send(self, request, **kwargs):
        kwargs["timeout"] = CLIENT_TIMEOUT_S
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(CountingRetry, "increment", increment)
    monkeypatch.setattr(HTTPAdapter, "send", send)
    rng = random.Random(SEED)
    counts: Counter = Counter()
    runs_per_round = []
    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, rate_limits=False) as server:
        [sync] = load_syncs(write_config(tmp_path / "syncs.yml", server.base_url, rate_limited=False,
                                         max_remove_share=1, max_add_multiple=100))
        stop = threading.Event()
        members = people(1_500)
        round_no = 0
        while round_no < MIN_ROUNDS or (round_no < MAX_ROUNDS and not all(_kinds_met(met).values())):
            members = [m for m in members if rng.random() > 0.3] + people(400, start=2_000 + 400 * round_no)
            set_audience(duck_warehouse, members)
            stop.clear()
            toggler = threading.Thread(target=_phases, args=(server.base_url, stop, random.Random(round_no),
                                                             counts, SEED * 100 + round_no), daemon=True)
            toggler.start()
            try:
                for run in range(1, MAX_RUNS + 1):
                    try:
                        result = run_sync(duck_warehouse, sync, env={"TEST_KLAVIYO_KEY": TOKEN}, progress=False)
                    except requests.RequestException as exc:  # retries exhausted: the rerun must converge
                        counts["runs_failed"] += 1
                        counts[f"failed_{type(exc).__name__}"] += 1
                        continue
                    if result.status == "success":
                        break
                    counts["runs_failed"] += 1
            finally:
                stop.set()  # read the destination without faults
                toggler.join()
            runs_per_round.append(run)
            server_faults_off(server.base_url)
            wanted = {m["email"] for m in members}
            assert list_members(server.base_url) == wanted, f"round {round_no}: the list differs"
            assert synced_emails(duck_warehouse) == wanted, f"round {round_no}: the state differs"
            round_no += 1
    summary = {"rounds": round_no, "runs_per_round": runs_per_round, **counts,
               "client_retries_by_cause": dict(met), "kinds_met": _kinds_met(met)}
    (tmp_path / "combined_faults.json").write_text(json.dumps(summary, indent=2))
    print("combined faults:", json.dumps(summary))
    assert all(_kinds_met(met).values()), summary  # every fault was met
    assert max(runs_per_round) <= MAX_RUNS


def server_faults_off(base_url: str) -> None:
    requests.post(f"{base_url}/_sandbox/faults", json={}, timeout=5)
