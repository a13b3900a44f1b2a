"""The sync engine against the real sandbox (HTTP on 127.0.0.1) and a real DuckDB/PostgreSQL
warehouse: exact membership, idempotent reruns, diffs, removals, safety, dry-run, rejections,
transient failures and config errors. Crash convergence (SIGKILL when the N-th request arrives,
rerun) is tests/faults/test_kill_trials.py."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync, run_syncs
from syncs.sandbox.server import run_in_thread
from sync_helpers import people, set_audience

TOKEN = "sandbox-token"


def write_config(path: Path, base_url: str, rate_limited: bool = True, **safety) -> Path:
    safety_yaml = "".join(f"\n      {k}: {v}" for k, v in safety.items())
    path.write_text(f"""syncs:
  - name: klaviyo_cart
    source: {{audience: cart_abandonment, channel: email}}
    destination:
      type: klaviyo
      list_name: cart_abandonment
      base_url: {base_url}/klaviyo
      api_key_env: TEST_KLAVIYO_KEY{chr(10) + '      client_rate_limits: false' if not rate_limited else ''}
    mode: add_remove{(chr(10) + '    safety:' + safety_yaml) if safety else ''}
""")
    return path


def list_members(base_url: str) -> set[str]:
    headers = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15"}
    lists = requests.get(f"{base_url}/klaviyo/api/lists", headers=headers, timeout=10).json()["data"]
    [target] = [l for l in lists if l["attributes"]["name"] == "cart_abandonment"]
    emails, url = set(), f"{base_url}/klaviyo/api/lists/{target['id']}/profiles?page[size]=100"
    while url:
        body = requests.get(url, headers=headers, timeout=10).json()
        emails |= {p["attributes"]["email"] for p in body["data"]}
        url = body["links"].get("next")
    return emails


@pytest.fixture
def env():
    return {"TEST_KLAVIYO_KEY": TOKEN}


@pytest.fixture
def wire(monkeypatch) -> list[requests.PreparedRequest]:
    """Every request the sync puts on the wire (the real transport still sends it)."""
    seen: list[requests.PreparedRequest] = []
    real_send = requests.Session.send

    def send(self, request, **kwargs):
        seen.append(request)
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return seen


def test_first_run_adds_exactly_the_non_holdout_members_and_rerun_sends_nothing(any_warehouse, sandbox, env, tmp_path,
                                                                                wire):
    members = people(30) + people(5, start=100, is_holdout=True)
    set_audience(any_warehouse, members)
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    first = run_sync(any_warehouse, sync, env=env, progress=False)
    assert (first.status, first.adds, first.removes) == ("success", 30, 0)
    assert list_members(sandbox.base_url) == {m["email"] for m in members if not m.get("is_holdout")}
    imports = [r for r in wire if r.method == "POST" and r.path_url.endswith("/profile-bulk-import-jobs")]
    sent = [p["attributes"]["external_id"] for r in imports
            for p in json.loads(r.body)["data"]["attributes"]["profiles"]["data"]]
    assert sorted(sent) == sorted(m["profile_id"] for m in members if not m.get("is_holdout"))
    wire.clear()
    second = run_sync(any_warehouse, sync, env=env, progress=False)
    assert (second.status, second.adds, second.updates, second.removes) == ("success", 0, 0, 0)
    assert wire == []  # not a single request to the destination
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        runs = conn.execute(sa.text("select status, adds from lifeline_state.sync_runs order by started_at")).fetchall()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("success", 30), ("success", 0)]


def test_changes_send_exactly_the_diff(duck_warehouse, sandbox, env, tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(20))
    run_sync(duck_warehouse, sync, env=env, progress=False)
    changed = people(18) + people(3, start=50)           # two leave, three join
    changed[0]["first_name"] = "Renamed"                  # one changes an attribute
    set_audience(duck_warehouse, changed)
    result = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert (result.adds, result.updates, result.removes) == (3, 1, 2)
    assert list_members(sandbox.base_url) == {m["email"] for m in changed}


def test_batches_stay_within_klaviyo_limits(duck_warehouse, sandbox, env, tmp_path, wire):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url, rate_limited=False,
                                           max_remove_share=1))
    set_audience(duck_warehouse, people(10_500))
    assert run_sync(duck_warehouse, sync, env=env, progress=False).adds == 10_500
    set_audience(duck_warehouse, people(100))
    assert run_sync(duck_warehouse, sync, env=env, progress=False).removes == 10_400
    imports = [len(json.loads(r.body)["data"]["attributes"]["profiles"]["data"]) for r in wire
               if r.method == "POST" and r.path_url.endswith("/profile-bulk-import-jobs")]
    deletes = [len(json.loads(r.body)["data"]) for r in wire if r.method == "DELETE"]
    assert sorted(imports) == [500, 10_000]
    assert max(deletes) == 1_000 and sum(deletes) == 10_400
    assert all(len(r.body or b"") <= 5_000_000 for r in wire)
    assert len(list_members(sandbox.base_url)) == 100
    # The import jobs' counts acknowledge the rows: no job's profiles are read back; the removed
    # rows' Klaviyo ids are looked up 100 per GET /api/profiles?filter=any(external_id,[...]).
    assert not [r for r in wire if "/profile-bulk-import-jobs/" in r.path_url and "/profiles" in r.path_url]
    lookups = [r for r in wire if r.method == "GET" and "/api/profiles?" in r.path_url]
    assert len(lookups) == 104 and all("any%28external_id" in r.path_url for r in lookups)


def test_safety_limit_blocks_a_mass_removal_and_force_overrides(duck_warehouse, sandbox, env, tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(50))
    run_sync(duck_warehouse, sync, env=env, progress=False)
    set_audience(duck_warehouse, people(10))   # an audience emptied by a bug
    blocked = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert blocked.status == "blocked" and "would remove 40 of 50" in blocked.message
    assert len(list_members(sandbox.base_url)) == 50  # nothing was sent
    forced = run_sync(duck_warehouse, sync, env=env, progress=False, force=True)
    assert forced.status == "success" and forced.removes == 40
    assert len(list_members(sandbox.base_url)) == 10


def test_dry_run_plans_and_sends_nothing(duck_warehouse, sandbox, env, tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(25_000 // 1000))
    result = run_sync(duck_warehouse, sync, env=env, progress=False, dry_run=True)
    assert result.status == "dry_run" and result.adds == 25 and "API calls" in result.message
    summary = requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()
    assert summary["klaviyo"]["profiles"] == 0


def test_invalid_rows_are_rejected_once_and_not_retried_until_changed(duck_warehouse, sandbox, env, tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    bad = {"profile_id": "p_bad", "email": None, "phone": "12345"}  # not E.164: Klaviyo rejects it
    set_audience(duck_warehouse, people(5) + [bad])
    first = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert (first.adds, first.rejections) == (5, 1)
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        code, message = conn.execute(sa.text("select code, message from lifeline_state.rejections")).one()
    assert code and message
    again = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert (again.adds, again.rejections) == (0, 0)  # not retried while unchanged
    set_audience(duck_warehouse, people(5) + [dict(bad, phone="+14155550123")])
    fixed = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert (fixed.adds, fixed.rejections) == (1, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lifeline_state.rejections")).scalar() == 0
    engine.dispose()


def test_transient_errors_are_retried_and_nothing_is_lost(duck_warehouse, tmp_path, env):
    faults = {"klaviyo": {"error_rate": 0.3, "burst_429": 0.2}}
    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, faults=faults, fault_seed=7) as server:
        [sync] = load_syncs(write_config(tmp_path / "syncs.yml", server.base_url))
        set_audience(duck_warehouse, people(40))
        result = run_sync(duck_warehouse, sync, env=env, progress=False)
        assert result.status == "success" and result.adds == 40 and result.retries > 0
        requests.post(f"{server.base_url}/_sandbox/faults", json={}, timeout=10)
        assert len(list_members(server.base_url)) == 40


def test_wrong_key_fails_clearly_and_marks_nothing(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync, env={"TEST_KLAVIYO_KEY": "wrong"}, progress=False)
    assert result.status == "failed" and "refused the API key" in result.message and "wrong" not in result.message
    missing = run_sync(duck_warehouse, sync, env={}, progress=False)
    assert missing.status == "failed" and "TEST_KLAVIYO_KEY is not set" in missing.message
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lifeline_state.sync_state")).scalar() == 0
    engine.dispose()


@pytest.mark.parametrize("text, where", [
    ("syncs:\n  - name: Bad Name\n    source: {audience: x}\n    destination: {type: klaviyo, list_name: x, base_url: u}\n",
     ":2: syncs.0.name"),
    ("syncs:\n  - name: ok\n    source: {audience: x}\n    destination: {type: fax, base_url: u}\n",
     ":4: syncs.0.destination.type"),
    ("syncs:\n  - name: ok\n    source: {audience: x}\n    destination: {type: klaviyo, base_url: u}\n",
     ":4: syncs.0.destination"),
    ("syncs:\n  - name: ok\n    source: {audience: x, channel: fax}\n    destination: {type: klaviyo, list_name: x, base_url: u}\n",
     ":3: syncs.0.source.channel"),
])
def test_config_errors_name_file_line_and_field(tmp_path, text, where):
    path = tmp_path / "syncs.yml"
    path.write_text(text)
    with pytest.raises(SyncConfigError) as err:
        load_syncs(path)
    assert f"{path}{where}" in str(err.value)


def test_unknown_sync_name_is_a_clear_error(duck_warehouse, sandbox, tmp_path):
    with pytest.raises(ValueError, match="no sync named nope"):
        run_syncs(duck_warehouse, write_config(tmp_path / "syncs.yml", sandbox.base_url), ["nope"])


def test_import_jobs_are_pipelined_and_state_follows_only_collected_jobs(duck_warehouse, sandbox, env, tmp_path,
                                                                          monkeypatch):
    """The engine keeps up to KlaviyoList.in_flight import jobs running while it reads the next
    pages. When the third job's connection dies, the state holds exactly the rows of the jobs
    collected before it (never a row of a later job, even one Klaviyo imported), and the rerun
    converges."""
    from syncs.destinations.klaviyo import KlaviyoList

    lock, state = threading.Lock(), {"open": 0, "most": 0}
    real_send = requests.Session.send
    members = people(4_500)
    third_job = f'"{sorted(m["profile_id"] for m in members)[2_000]}"'.encode()  # first key of page 3

    def send(self, request, **kwargs):
        posting = request.method == "POST" and request.path_url.endswith("/profile-bulk-import-jobs")
        with lock:
            state["open"] += posting
            state["most"] = max(state["most"], state["open"])
        try:
            if posting:
                time.sleep(0.6)  # a slow job (even on a loaded machine): the next ones must not wait for it
            # the third page's job, whichever thread posts it first (threads race to the socket); its
            # connection dies after the wait, so it was open beside the first two
            if posting and state.get("break") and third_job in (request.body or b""):
                raise requests.ConnectionError("connection reset by the test")
            return real_send(self, request, **kwargs)
        finally:
            with lock:
                state["open"] -= posting

    monkeypatch.setattr(requests.Session, "send", send)
    monkeypatch.setattr(KlaviyoList, "add_batch_size", 1_000)  # pages of 1,000 rows: one job each
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url, rate_limited=False))
    set_audience(duck_warehouse, members)
    state["break"] = True
    with pytest.raises(requests.ConnectionError):
        run_sync(duck_warehouse, sync, env=env, progress=False)
    assert state["most"] == KlaviyoList.in_flight > 1  # jobs overlapped, never more than in_flight
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        claimed = {k for (k,) in conn.execute(sa.text("select key from lifeline_state.sync_state"))}
        run = conn.execute(sa.text("select status, adds from lifeline_state.sync_runs")).fetchone()
    engine.dispose()
    first_two_jobs = sorted(m["profile_id"] for m in members)[:2_000]
    assert claimed == set(first_two_jobs) and tuple(run) == ("failed", 2_000)
    held = list_members(sandbox.base_url)
    assert {f"person{int(k[2:])}@example.com" for k in claimed} <= held  # the state never leads the list
    state["break"] = False
    rerun = run_sync(duck_warehouse, sync, env=env, progress=False)
    assert (rerun.status, rerun.adds) == ("success", 2_500)
    assert list_members(sandbox.base_url) == {m["email"] for m in members}


def test_add_remove_pages_make_sent_fields_from_the_payload_without_reading_the_old(duck_warehouse, sandbox, env,
                                                                                    tmp_path, monkeypatch):
    """Outside upsert and without a `fields:` mapping, the pages are read without the diff's
    sent_fields (what each row carried before) and the state keeps what each row carries now."""
    import syncs.engine as engine_module

    read: list[tuple[str, ...]] = []
    for reader in ("pages", "arrow_pages"):  # as dicts, or as columns (base.ColumnPage: Klaviyo's add)
        real = getattr(engine_module, reader)
        monkeypatch.setattr(engine_module, reader, lambda conn, ops, size, extra=(), real=real: (
            read.append(extra) if "add" in ops else None, real(conn, ops, size, extra))[1])
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3, payload=json.dumps({"step": 1, "offer": "a"})))
    assert run_sync(duck_warehouse, sync, env=env, progress=False).adds == 3
    set_audience(duck_warehouse, people(2, payload=json.dumps({"step": 2})) + people(1, start=2, payload=None))
    assert run_sync(duck_warehouse, sync, env=env, progress=False).updates == 3
    assert read == [("has_state",), ("has_state",)]
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        state = dict(conn.execute(sa.text("select key, sent_fields from lifeline_state.sync_state")).fetchall())
    engine.dispose()
    assert state == {"p_00000": '["step"]', "p_00001": '["step"]', "p_00002": "[]"}
