"""Google Customer Match through the Data Manager API against the sandbox and a real DuckDB warehouse:
Google's formatter rules (Gmail dots), hex SHA-256 only on the wire, 10,000 members per request,
consent and terms sent, partial failures -> rejections, 429/503 retried, auth and config errors."""
from __future__ import annotations

import json

import pytest
from ads_helpers import (TOKEN, add_10500_then_keep_100, assert_no_raw_pii, converges_under_faults, held, record, sha,
                         state, write_config)
from sync_helpers import people, set_audience

from syncs.config import SyncConfigError, load_syncs
from syncs.destinations import google
from syncs.engine import run_sync
from syncs.erasure import forget_one

ENV = {"GOOGLE_TOKEN": TOKEN}
USER_LIST = "7001"


def sync_for(tmp_path, base_url: str):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "google_cart", (
        f'{{type: google, customer_id: "123-456-7890", audience_id: {USER_LIST}, base_url: "{base_url}/google", '
        "api_key_env: GOOGLE_TOKEN, client_rate_limits: false}")))
    return sync


def key(email: str) -> str:
    """The sandbox's member key: the first identifier (the hashed email), computed independently."""
    return f"emailAddress:{sha(email)}"


def test_gmail_rules_hashes_only_consent_and_rerun_sends_nothing(duck_warehouse, sandbox, tmp_path):
    members = [{"profile_id": "p_gmail", "email": "Jane.Doe+ads@GMAIL.com", "phone": "+1 800 555 0100"},
               {"profile_id": "p_plain", "email": "John.Smith@Example.com"}] + people(10) \
        + people(2, start=50, is_holdout=True)
    set_audience(duck_warehouse, members)
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds) == ("success", 12)
    expected = {key("janedoe@gmail.com"), key("john.smith@example.com")} | {key(m["email"]) for m in people(10)}
    assert held(sandbox.base_url, "google", USER_LIST) == expected
    [ingest] = wire.to("google")
    body = json.loads(ingest.body)
    assert body["destinations"] == [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                                     "productDestinationId": USER_LIST}]
    assert body["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert body["termsOfService"] == {"customerMatchTermsOfServiceStatus": "ACCEPTED"} and body["encoding"] == "HEX"
    gmail = [{"emailAddress": sha("janedoe@gmail.com")}, {"phoneNumber": sha("+18005550100")}]
    assert {"userData": {"userIdentifiers": gmail}} in body["audienceMembers"]
    wire.seen.clear()
    second = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (second.status, second.adds, second.updates, second.removes) == ("success", 0, 0, 0)
    assert wire.seen == []
    # an email change removes the old member before adding the new one; leavers are removed
    changed = [dict(members[0], email="jane.new@gmail.com")] + people(8)
    set_audience(duck_warehouse, changed)
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (third.updates, third.removes) == (1, 3)
    assert held(sandbox.base_url, "google", USER_LIST) == {key("janenew@gmail.com")} | {
        key(m["email"]) for m in people(8)}
    stored = dict(state(duck_warehouse, "sync_state", "key, destination_id"))
    outcome = forget_one(sync, [{"key": "p_00001", "email": "person1@example.com", "phone": None,
                                 "destination_id": stored["p_00001"]}], ENV)
    assert outcome.status == "deleted" and key("person1@example.com") not in held(sandbox.base_url, "google",
                                                                                  USER_LIST)
    assert_no_raw_pii(wire.to("google"), members + changed)


def test_requests_never_exceed_10000_members(duck_warehouse, sandbox, tmp_path):
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url)
    add_10500_then_keep_100(duck_warehouse, sync, ENV)
    sizes = {verb: sorted(len(json.loads(r.body)["audienceMembers"]) for r in wire.to("google")
                          if r.path.endswith(verb)) for verb in (":ingest", ":remove")}
    assert sizes == {":ingest": [500, 10_000], ":remove": [400, 10_000]}
    assert len(held(sandbox.base_url, "google", USER_LIST)) == 100


def test_invalid_rows_and_partial_failures_become_rejections(duck_warehouse, sandbox, tmp_path):
    sync = sync_for(tmp_path, sandbox.base_url)
    set_audience(duck_warehouse, people(5) + [{"profile_id": "p_space", "email": "a b@example.com"}])
    result = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (result.status, result.adds, result.rejections) == ("success", 5, 1)
    assert state(duck_warehouse, "rejections", "key, code") == [("p_space", "invalid_email")]
    # Google's own partial-failure report (fieldViolations on audience_members[i]): that row is
    # rejected, the others are sent again and applied
    client = google.GoogleAudience(f"{sandbox.base_url}/google", TOKEN, "1234567890", "7002", key_env="GOOGLE_TOKEN",
                                   rate_limits=False)
    sent = [({"key": "ok1"}, {"EMAIL": sha("x@example.com")}), ({"key": "bad"}, {"EMAIL": "not-a-hash"}),
            ({"key": "ok2"}, {"PHONE": sha("+15550001111")})]
    results = client.ingest(sent)
    assert [(r.key, r.ok, r.code) for r in results] == [("bad", False, "INVALID_ARGUMENT"), ("ok1", True, None),
                                                        ("ok2", True, None)]
    assert "audience_members[1]" in results[0].message
    assert len(held(sandbox.base_url, "google", "7002")) == 2


def test_429_and_503_are_retried_and_the_sync_converges(duck_warehouse, sandbox, tmp_path):
    sync = sync_for(tmp_path, sandbox.base_url)
    converges_under_faults(duck_warehouse, sandbox, sync, ENV, "google", seed=3)
    assert held(sandbox.base_url, "google", USER_LIST) == {key(m["email"]) for m in people(20)}


def test_wrong_token_names_the_variable_and_marks_nothing(duck_warehouse, sandbox, tmp_path):
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env={"GOOGLE_TOKEN": "x"}, progress=False)
    assert result.status == "failed" and "401" in result.message and "check GOOGLE_TOKEN" in result.message
    assert state(duck_warehouse, "sync_state", "key") == []


def test_missing_secret_is_a_clear_error_and_nothing_is_sent(duck_warehouse, sandbox, tmp_path):
    wire = record(sandbox)
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env={}, progress=False)
    assert result.status == "failed" and "GOOGLE_TOKEN is not set" in result.message
    assert wire.seen == [] and state(duck_warehouse, "sync_state", "key") == []


@pytest.mark.parametrize("destination, problem", [
    ("{type: google, audience_id: 1, base_url: u, api_key_env: K}", r"syncs.yml:4: syncs.0.destination: .*customer_id"),
    ("{type: google, customer_id: 1234567890, base_url: u, api_key_env: K}", r"needs audience_id"),
    ("{type: google, customer_id: 12-34, audience_id: 1, base_url: u, api_key_env: K}",
     r"syncs.0.destination.customer_id: .*10-digit Google Ads customer id"),
])
def test_bad_config_names_the_field(tmp_path, destination, problem):
    with pytest.raises(SyncConfigError, match=problem):
        load_syncs(write_config(tmp_path / "syncs.yml", "g", destination))
