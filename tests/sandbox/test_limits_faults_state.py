"""Rate limits (429 shapes per platform), fault injection, persistence, reset and loopback-only serving."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from syncs.sandbox.faults import parse_faults
from syncs.sandbox.server import ensure_loopback, faults_from_env, serve
from syncs.sandbox.store import Store

from .conftest import KLAVIYO_HEADERS, TOKEN

ACCOUNT = "AC" + "0" * 32


def test_twilio_429_code_20429(start_sandbox):
    sandbox = start_sandbox(limit_overrides={"twilio:api": [(2, 60)]})
    url = f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    answers = [requests.get(url, auth=(ACCOUNT, TOKEN)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == 20429


def test_braze_429_keeps_rate_headers(start_sandbox):
    sandbox = start_sandbox(limit_overrides={"braze:users_track": [(1, 60)]})
    url, headers = f"{sandbox.base_url}/braze/users/track", {"Authorization": f"Bearer {TOKEN}"}
    body = {"attributes": [{"external_id": "u1"}]}
    first, second = (requests.post(url, headers=headers, json=body) for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 429)
    assert second.headers["X-RateLimit-Remaining"] == "0" and int(second.headers["X-RateLimit-Reset"]) > 1e9


def test_meta_throttling_is_graph_code_17(start_sandbox):
    sandbox = start_sandbox(limit_overrides={"meta:ca": [(1, 3600)]})
    url = f"{sandbox.base_url}/meta/v25.0/1/users"
    data = {"access_token": TOKEN, "payload": json.dumps({"schema": "EMAIL_SHA256", "data": ["0" * 64]})}
    requests.post(url, data=data)
    throttled = requests.post(url, data=data)
    assert throttled.json()["error"]["code"] == 17 and throttled.json()["error"]["is_transient"] is True
    assert "X-Business-Use-Case-Usage" in throttled.headers


def test_mailchimp_more_than_the_concurrent_connection_cap_gets_429(start_sandbox):
    sandbox = start_sandbox(mailchimp_concurrency=2, faults={"mailchimp": {"latency_ms": 400}})
    url = f"{sandbox.base_url}/mailchimp/3.0/lists/l1/members"
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(requests.get(url, auth=("x", TOKEN)).status_code))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 200, 429, 429, 429]


def test_rate_limits_can_be_switched_off(start_sandbox):
    sandbox = start_sandbox(rate_limits=False, limit_overrides={"klaviyo:L": [(1, 60)]})
    answers = [requests.get(f"{sandbox.base_url}/klaviyo/api/lists", headers=KLAVIYO_HEADERS) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}


def test_error_rate_gives_5xx_at_roughly_the_configured_rate(start_sandbox):
    sandbox = start_sandbox(faults={"braze": {"error_rate": 0.3}}, fault_seed=7)
    url, headers = f"{sandbox.base_url}/braze/users/track", {"Authorization": f"Bearer {TOKEN}"}
    statuses = [requests.post(url, headers=headers, json={"attributes": [{"external_id": "u"}]}).status_code
                for _ in range(200)]
    errors = sum(s >= 500 for s in statuses)
    assert 40 <= errors <= 80, errors
    assert set(statuses) <= {201, 503}


def test_drop_rate_closes_connections_without_a_response(start_sandbox):
    sandbox = start_sandbox(faults={"klaviyo": {"drop_rate": 0.5}}, fault_seed=3)
    dropped = 0
    for _ in range(60):
        conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
        try:
            conn.request("GET", "/klaviyo/api/lists", headers=KLAVIYO_HEADERS)
            assert conn.getresponse().status == 200
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
            dropped += 1
        finally:
            conn.close()
    assert 18 <= dropped <= 42, dropped


def test_faults_are_seeded_and_settable_at_runtime(start_sandbox, tmp_path):
    def run(seed: int, state: Path) -> list[int]:
        sandbox = start_sandbox(state_dir=state, fault_seed=seed)
        r = requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"google": {"burst_429": 0.5}})
        assert r.status_code == 200 and r.json()["google"]["burst_429"] == 0.5
        url = f"{sandbox.base_url}/google/v1/audienceMembers:ingest"
        return [requests.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, json={}).status_code
                for _ in range(20)]
    first, second = run(11, tmp_path / "a"), run(11, tmp_path / "b")
    assert first == second and 429 in first and 400 in first
    sandbox = start_sandbox(state_dir=tmp_path / "c")
    bad = requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"google": {"error_rate": 2}})
    assert bad.status_code == 400 and "error_rate" in bad.json()["error"]
    assert requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"nope": {}}).status_code == 400


def test_faults_env_syntax():
    specs = parse_faults("klaviyo:error_rate=0.1,latency_ms=20;twilio:drop_rate=0.05")
    assert specs["klaviyo"].error_rate == 0.1 and specs["klaviyo"].latency_ms == 20
    assert specs["twilio"].drop_rate == 0.05
    assert faults_from_env({"LIFELINE_SANDBOX_FAULTS": ""}) == {}
    for bad in ("klaviyo", "klaviyo:error_rate=lots", "klaviyo:oops=1", "mars:error_rate=0.1"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_state_survives_a_restart_and_reset_clears_it(start_sandbox, tmp_path):
    state = tmp_path / "persist"
    first = start_sandbox(state_dir=state)
    lists = f"{first.base_url}/klaviyo/api/lists"
    created = requests.post(lists, json={"data": {"type": "list", "attributes": {"name": "welcome"}}},
                            headers=KLAVIYO_HEADERS).json()["data"]["id"]
    requests.post(f"{first.base_url}/mailchimp/3.0/lists/l1", auth=("x", TOKEN),
                  json={"members": [{"email_address": "a@e.com", "status": "subscribed"}]})
    first.stop()
    second = start_sandbox(state_dir=state)
    again = requests.get(f"{second.base_url}/klaviyo/api/lists", headers=KLAVIYO_HEADERS).json()["data"]
    assert [x["id"] for x in again] == [created]
    assert requests.get(f"{second.base_url}/_sandbox/summary").json()["mailchimp"] == {"lists": {"l1": 1}}
    assert requests.post(f"{second.base_url}/_sandbox/reset").json() == {"reset": True}
    assert requests.get(f"{second.base_url}/klaviyo/api/lists", headers=KLAVIYO_HEADERS).json()["data"] == []
    second.stop()
    third = start_sandbox(state_dir=state)
    requests.post(f"{third.base_url}/mailchimp/3.0/lists/l2", auth=("x", TOKEN),
                  json={"members": [{"email_address": "b@e.com", "status": "subscribed"}]})
    third.stop()
    fresh = start_sandbox(state_dir=state, reset=True)
    assert requests.get(f"{fresh.base_url}/_sandbox/summary").json()["mailchimp"] == {"lists": {}}
    assert requests.get(f"{fresh.base_url}/_sandbox/health").json()["status"] == "ok"


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from syncs.sandbox.store import Store
store = Store(Path(sys.argv[1]))
with store.tx() as db:
    db.execute("insert into kl_lists (id, name, created, updated) values ('kept', 'k', 'now', 'now')")
    db.executemany("insert into webhook_deliveries (name, body, received) values ('w', ?, 'now')",
                   [("before" * 700,)] * 2000)
with store.tx() as db:
    db.execute("pragma cache_size=8")  # the changed pages spill into the database file before the commit
    db.execute("update webhook_deliveries set body = 'after'")
    db.execute("delete from kl_lists")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_in_a_write_leaves_the_last_committed_state(tmp_path):
    """The store's journal: a sandbox killed while a transaction has written part of its pages into
    the database opens again with what was committed before it, and none of that transaction."""
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    store = Store(tmp_path)
    with store.tx() as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        assert db.execute("select id from kl_lists").fetchall() == [("kept",)]
        assert db.execute("select body, count(*) from webhook_deliveries group by body").fetchall() == [
            ("before" * 700, 2000)]
    store.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "8.8.8.8"])
def test_non_loopback_hosts_are_refused(host, tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        ensure_loopback(host)
    with pytest.raises(ValueError, match="loopback"):
        serve(host=host, port=0, state_dir=tmp_path)
    assert not (tmp_path / "sandbox.sqlite3").exists()


def test_loopback_hosts_are_accepted():
    ensure_loopback("127.0.0.1")
    ensure_loopback("localhost")
