"""Meta Custom Audiences against the sandbox (HTTP on 127.0.0.1) and a real DuckDB warehouse:
hashed multi-key rows only, 10,000 per call, per-row rejections, throttling codes inside 400s,
5xx, auth, config errors, convergence and forget()."""
from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
import requests
from ads_helpers import (TOKEN, add_10500_then_keep_100, assert_no_raw_pii, converges_under_faults, held, record, sha,
                         state, write_config)
from sync_helpers import people, set_audience

from syncs.config import SyncConfigError, load_syncs
from syncs.destinations import meta
from syncs.destinations.base import DestinationError
from syncs.engine import run_sync
from syncs.erasure import forget_one

ENV = {"META_TOKEN": TOKEN}
AUDIENCE = "23850000000000001"
NAMES = {"Zoë": "zoë", "O'Neil": "oneil"}  # Meta: lowercase letters only, UTF-8 letters kept


def sync_for(tmp_path, base_url: str, extra: str = ""):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "meta_cart", (
        f'{{type: meta, audience_id: "{AUDIENCE}", base_url: "{base_url}/meta", api_key_env: META_TOKEN, '
        f"client_rate_limits: false{extra}}}")))
    return sync


def expected_row(m: dict) -> str:
    """Meta's member key in the sandbox: the four schema values, computed here independently."""
    email = sha(m["email"].strip().lower()) if m.get("email") else ""
    phone = sha("".join(c for c in m["phone"] if c.isdigit()).lstrip("0")) if m.get("phone") else ""
    first_name = m.get("first_name", "A")  # set_audience's default
    first = sha(NAMES.get(first_name, first_name.lower())) if first_name else ""
    last = sha(NAMES.get(m["last_name"], m["last_name"].lower())) if m.get("last_name") else ""
    return "|".join([email, phone, first, last])


def payload_rows(received) -> list[list[str]]:
    return json.loads(parse_qs(received.body.decode())["payload"][0])["data"]


def test_adds_hashed_rows_sends_no_raw_pii_and_rerun_sends_nothing(duck_warehouse, sandbox, tmp_path):
    members = [dict(m, phone=f"+1650555{i:04d}", first_name="Zoë", last_name="O'Neil")
               for i, m in enumerate(people(20))] + people(5, start=20, first_name=None) \
        + people(3, start=100, is_holdout=True)
    set_audience(duck_warehouse, members)
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 25, 0)
    sent = [m for m in members if not m.get("is_holdout")]
    assert held(sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in sent}
    [post] = wire.to("meta")
    form = parse_qs(post.body.decode())
    assert form["access_token"] == [TOKEN] and json.loads(form["payload"][0])["schema"] == meta.SCHEMA
    assert json.loads(form["session"][0])["estimated_num_total"] == 25
    wire.seen.clear()
    second = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (second.status, second.adds, second.updates, second.removes) == ("success", 0, 0, 0)
    assert wire.seen == []  # not a single request
    # a payload-only change sends nothing either: the hashed identifiers did not change
    set_audience(duck_warehouse, [dict(m, payload='{"step": 2}') for m in members])
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert third.updates == 25 and wire.seen == []
    # changes, removals and a forget(): still no raw email, phone or name on the wire
    sent = [dict(m, payload='{"step": 2}') for m in sent]
    changed = [dict(m, email=f"new{i}@example.com") for i, m in enumerate(sent[:3])] + sent[3:20]
    set_audience(duck_warehouse, changed)
    fourth = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (fourth.updates, fourth.removes) == (3, 5)  # old rows of the 3 new emails removed, new ones added
    assert held(sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in changed}
    stored = dict(state(duck_warehouse, "sync_state", "key, destination_id"))
    outcome = forget_one(sync, [{"key": "p_00004", "email": sent[4]["email"], "phone": sent[4]["phone"],
                                 "destination_id": stored["p_00004"]}], ENV)
    assert outcome.status == "deleted"
    assert held(sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in changed if m is not sent[4]}
    assert_no_raw_pii(wire.to("meta"), members + changed)


def test_batches_never_exceed_10000_rows(duck_warehouse, sandbox, tmp_path):
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url)
    add_10500_then_keep_100(duck_warehouse, sync, ENV)
    for method, total in (("POST", 10_500), ("DELETE", 10_400)):
        calls = [r for r in wire.to("meta") if r.method == method]
        assert sum(len(payload_rows(r)) for r in calls) == total
        assert max(len(payload_rows(r)) for r in calls) == 10_000  # full batches, never more
        assert len(calls) == 2
        fields = [part for r in calls for part in r.body.split(b"&") if part.startswith(b"payload=")]
        assert len(fields) == len(calls) and max(map(len, fields)) <= meta.MAX_PAYLOAD_BYTES
    assert len(held(sandbox.base_url, "meta", AUDIENCE)) == 100


def test_invalid_rows_are_rejected_and_not_retried(duck_warehouse, sandbox, tmp_path):
    sync = sync_for(tmp_path, sandbox.base_url)
    bad = [{"profile_id": "p_bad_email", "email": "not-an-email"},
           {"profile_id": "p_no_id", "email": None, "phone": None}]
    set_audience(duck_warehouse, people(10) + bad)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 10, 2)
    assert state(duck_warehouse, "rejections", "key, code") == [("p_bad_email", "invalid_email"),
                                                                 ("p_no_id", "no_identifier")]
    assert "not-an-email" not in str(state(duck_warehouse, "rejections", "message"))
    again = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (again.adds, again.rejections) == (0, 0)


def test_invalid_entry_samples_become_rejections(sandbox):
    client = meta.MetaAudience(f"{sandbox.base_url}/meta", TOKEN, AUDIENCE, key_env="META_TOKEN", rate_limits=False)
    good, broken = {"EMAIL": sha("a@example.com")}, {"EMAIL": "ab" * 10}  # not a SHA-256 digest
    answer = client._send("POST", [good, broken])
    assert answer["num_invalid_entries"] == 1
    results = meta._acknowledge([({"key": "good"}, good), ({"key": "bad"}, broken)], answer)
    assert [(r.key, r.ok, r.code) for r in results] == [("good", True, None), ("bad", False, "meta_invalid_entry")]


def test_throttling_codes_and_5xx_are_retried_and_the_sync_converges(duck_warehouse, sandbox, tmp_path):
    sync = sync_for(tmp_path, sandbox.base_url)
    converges_under_faults(duck_warehouse, sandbox, sync, ENV, "meta", seed=7)
    assert held(sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in people(20)}


def test_endless_throttling_stops_with_a_clear_error(sandbox):
    requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"meta": {"burst_429": 1.0}}, timeout=10)
    client = meta.MetaAudience(f"{sandbox.base_url}/meta", TOKEN, AUDIENCE, key_env="META_TOKEN", rate_limits=False,
                               backoff_s=0.01)
    with pytest.raises(DestinationError, match=r"Meta kept throttling after 8 attempts \(code 17/2446079.*rerun"):
        client.add([{"key": "p1", "email": "a@example.com", "destination_id": None}])
    assert client.retries[0] == 7


def test_wrong_token_stops_the_run_naming_the_variable_and_marks_nothing(duck_warehouse, sandbox, tmp_path):
    sync = sync_for(tmp_path, sandbox.base_url)
    set_audience(duck_warehouse, people(5))
    result = run_sync(duck_warehouse, sync, env={"META_TOKEN": "wrong"}, progress=False)
    assert result.status == "failed" and "check META_TOKEN" in result.message and "code 190" in result.message
    assert state(duck_warehouse, "sync_state", "key") == []


def test_missing_secret_is_a_clear_error_and_nothing_is_sent(duck_warehouse, sandbox, tmp_path):
    wire = record(sandbox)
    set_audience(duck_warehouse, people(5))
    plan = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env={}, progress=False, dry_run=True)
    assert (plan.status, plan.adds) == ("dry_run", 5)  # a dry run needs no credentials
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env={}, progress=False)
    assert result.status == "failed" and "META_TOKEN is not set" in result.message
    assert wire.seen == [] and state(duck_warehouse, "sync_state", "key") == []


@pytest.mark.parametrize("destination, problem", [
    ("{type: meta, base_url: u, api_key_env: K}", r"syncs.yml:4: syncs.0.destination: .*needs audience_id"),
    ("{type: meta, audience_id: abc, base_url: u, api_key_env: K}",
     r"syncs.yml:4: syncs.0.destination.audience_id: .*numeric id"),
    ("{type: meta, audience_id: 123, base_url: u}", r"needs api_key_env"),
])
def test_bad_config_names_the_field(tmp_path, destination, problem):
    with pytest.raises(SyncConfigError, match=problem):
        load_syncs(write_config(tmp_path / "syncs.yml", "m", destination))


def test_unquoted_numeric_audience_id_is_accepted(tmp_path):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "m", "{type: meta, audience_id: 238500, base_url: u, "
                                                                 "api_key_env: K}"))
    assert sync.destination.audience_id == "238500"
