"""Meta appsecret_proof against the sandbox started with an app secret (an app with "Require App
Secret" on) and a real DuckDB warehouse: the proof is HMAC-SHA256(app secret, token) in hex, sent as
a parameter; a missing or wrong proof is refused by the sandbox as Graph refuses it and stops the run
with an error naming what to fix, without retries and without marking any row synced."""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

import pytest
from ads_helpers import TOKEN, held, record, sha, state, write_config
from sync_helpers import people, set_audience
from test_meta_sync import AUDIENCE, expected_row

from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync
from syncs.sandbox.server import run_in_thread

APP_SECRET = "0123456789abcdef0123456789abcdef"
ENV = {"META_TOKEN": TOKEN, "META_APP_SECRET": APP_SECRET}


@pytest.fixture
def secret_sandbox(tmp_path):
    with run_in_thread(tmp_path / "sandbox", token=TOKEN, rate_limits=False, meta_app_secret=APP_SECRET) as server:
        yield server


def sync_for(tmp_path, base_url: str, app_secret: bool = True):
    extra = ", app_secret_env: META_APP_SECRET" if app_secret else ""
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "meta_cart", (
        f'{{type: meta, audience_id: "{AUDIENCE}", base_url: "{base_url}/meta", api_key_env: META_TOKEN, '
        f"client_rate_limits: false{extra}}}")))
    return sync


def test_proof_is_sent_and_accepted_and_rerun_sends_nothing(duck_warehouse, secret_sandbox, tmp_path):
    members = people(12)
    set_audience(duck_warehouse, members)
    wire = record(secret_sandbox)
    sync = sync_for(tmp_path, secret_sandbox.base_url)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 12, 0), first.message
    assert held(secret_sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in members}
    [post] = wire.to("meta")
    form = parse_qs(post.body.decode())
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert form["appsecret_proof"] == [expected] and form["access_token"] == [TOKEN]
    wire.seen.clear()
    again = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (again.status, again.adds, again.removes) == ("success", 0, 0) and wire.seen == []
    # a removal (DELETE) carries the proof too and is accepted
    set_audience(duck_warehouse, members[:10])
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (third.status, third.removes) == ("success", 2)
    [delete] = wire.to("meta")
    assert delete.method == "DELETE" and parse_qs(delete.body.decode())["appsecret_proof"] == [expected]
    assert held(secret_sandbox.base_url, "meta", AUDIENCE) == {expected_row(m) for m in members[:10]}


@pytest.mark.parametrize("app_secret_env, env, advice", [
    (False, {"META_TOKEN": TOKEN}, "add app_secret_env: META_APP_SECRET to the destination"),
    (True, {"META_TOKEN": TOKEN, "META_APP_SECRET": "not-the-app-secret"},
     "META_APP_SECRET does not hold the app secret of the app that issued the token in META_TOKEN"),
])
def test_missing_or_wrong_proof_stops_with_a_clear_error_and_marks_nothing(duck_warehouse, secret_sandbox, tmp_path,
                                                                           app_secret_env, env, advice):
    set_audience(duck_warehouse, people(5))
    wire = record(secret_sandbox)
    result = run_sync(duck_warehouse, sync_for(tmp_path, secret_sandbox.base_url, app_secret_env), env=env,
                      progress=False)
    assert result.status == "failed" and advice in result.message, result.message
    assert "code 100" in result.message and "Invalid appsecret_proof provided in the API argument" in result.message
    assert len(wire.to("meta")) == 1 and result.retries == 0  # a permanent refusal: asked once, not retried
    assert state(duck_warehouse, "sync_state", "key") == []
    assert held(secret_sandbox.base_url, "meta", AUDIENCE) == set()
    assert "not-the-app-secret" not in result.message and APP_SECRET not in result.message
    # with the right secret the same rows go through: nothing was lost
    fixed = run_sync(duck_warehouse, sync_for(tmp_path, secret_sandbox.base_url), env=ENV, progress=False)
    assert (fixed.status, fixed.adds) == ("success", 5)


def test_named_but_unset_app_secret_is_a_clear_error_and_nothing_is_sent(duck_warehouse, secret_sandbox, tmp_path):
    set_audience(duck_warehouse, people(3))
    wire = record(secret_sandbox)
    result = run_sync(duck_warehouse, sync_for(tmp_path, secret_sandbox.base_url), env={"META_TOKEN": TOKEN},
                      progress=False)
    assert result.status == "failed" and "META_APP_SECRET is not set" in result.message
    assert wire.seen == [] and state(duck_warehouse, "sync_state", "key") == []


def test_app_secret_env_is_only_for_meta(tmp_path):
    with pytest.raises(SyncConfigError, match=r"syncs.0.destination: .*app_secret_env is for meta"):
        load_syncs(write_config(tmp_path / "syncs.yml", "g", "{type: google, customer_id: 123-456-7890, "
                                "audience_id: 1, base_url: u, api_key_env: K, app_secret_env: S}"))


def test_the_official_sdk_proof_is_accepted_and_a_wrong_one_refused(secret_sandbox):
    """facebook-business computes appsecret_proof itself: the sandbox's check agrees with it."""
    from facebook_business.adobjects.customaudience import CustomAudience
    from facebook_business.api import FacebookAdsApi
    from facebook_business.exceptions import FacebookRequestError
    from facebook_business.session import FacebookSession

    def audience(secret: str) -> CustomAudience:
        session = FacebookSession(app_id="1", app_secret=secret, access_token=TOKEN)
        session.GRAPH = f"{secret_sandbox.base_url}/meta"
        return CustomAudience(AUDIENCE, api=FacebookAdsApi(session))

    added = audience(APP_SECRET).add_users(CustomAudience.Schema.email_hash, ["a@example.com"], is_raw=True)
    assert added.json()["num_received"] == 1
    with pytest.raises(FacebookRequestError) as raised:
        audience("wrong").add_users(CustomAudience.Schema.email_hash, ["b@example.com"], is_raw=True)
    assert (raised.value.http_status(), raised.value.api_error_code(), raised.value.api_error_type()) == \
        (400, 100, "OAuthException")
    assert raised.value.api_error_message() == "Invalid appsecret_proof provided in the API argument"
    assert held(secret_sandbox.base_url, "meta", AUDIENCE) == {sha("a@example.com")}  # single-key schema row
