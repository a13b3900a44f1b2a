"""Sync modes upsert and mirror, dry-run records and the timeout setting, against the real sandbox on
127.0.0.1 and real DuckDB / PostgreSQL warehouses."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.config import SyncConfigError, load_syncs
from syncs.destinations import mailchimp
from syncs.destinations.mailchimp import subscriber_hash
from syncs.engine import run_sync

TOKEN = "sandbox-token"
ENV = {"KL_KEY": TOKEN, "MC_KEY": f"{TOKEN}-us1"}
KLAVIYO = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}


def klaviyo_sync(tmp_path: Path, base_url: str, mode: str, list_name: str | None = "cart", **extra: object):
    destination = {"type": "klaviyo", "base_url": f"{base_url}/klaviyo", "api_key_env": "KL_KEY",
                   "client_rate_limits": False, **({"list_name": list_name} if list_name else {}), **extra}
    path = tmp_path / "syncs.yml"
    path.write_text(f"""syncs:
  - name: kl_{mode}
    source: {{audience: cart_abandonment, channel: email}}
    mode: {mode}
    destination: {json.dumps(destination)}
    safety: {{max_remove_share: 0.2, max_add_multiple: 10}}
""")
    [sync] = load_syncs(path)
    return sync


def query(warehouse, sql: str) -> list[tuple]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]
    engine.dispose()
    return rows


def klaviyo_profile(base_url: str, key: str) -> dict | None:
    found = requests.get(f"{base_url}/klaviyo/api/profiles", headers=KLAVIYO, timeout=10,
                         params={"filter": f'equals(external_id,"{key}")'}).json()["data"]
    return found[0]["attributes"] if found else None


def klaviyo_list(base_url: str, name: str) -> dict[str, str | None]:
    """email -> external_id of the list's members (read page by page)."""
    lists = requests.get(f"{base_url}/klaviyo/api/lists", headers=KLAVIYO, timeout=10).json()["data"]
    [target] = [item["id"] for item in lists if item["attributes"]["name"] == name]
    out, url = {}, f"{base_url}/klaviyo/api/lists/{target}/profiles?page[size]=100"
    while url:
        body = requests.get(url, headers=KLAVIYO, timeout=10).json()
        out |= {p["attributes"]["email"]: p["attributes"].get("external_id") for p in body["data"]}
        url = body["links"].get("next")
    return out


def add_by_hand(base_url: str, list_name: str, emails: list[str]) -> None:
    """What a marketer does in Klaviyo's UI: profiles (no external_id) put in the list."""
    lists = requests.get(f"{base_url}/klaviyo/api/lists", headers=KLAVIYO, timeout=10).json()["data"]
    [target] = [item["id"] for item in lists if item["attributes"]["name"] == list_name]
    ids = []
    for email in emails:
        body = {"data": {"type": "profile", "attributes": {"email": email}}}
        ids.append(requests.post(f"{base_url}/klaviyo/api/profile-import", headers=KLAVIYO, data=json.dumps(body),
                                 timeout=10).json()["data"]["id"])
    requests.post(f"{base_url}/klaviyo/api/lists/{target}/relationships/profiles", headers=KLAVIYO, timeout=10,
                  data=json.dumps({"data": [{"type": "profile", "id": i} for i in ids]})).raise_for_status()


# -- upsert ---------------------------------------------------------------------------------------
def test_upsert_creates_then_updates_and_a_second_run_sends_nothing(duck_warehouse, sandbox, tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "upsert", list_name=None)  # upsert needs no list
    set_audience(duck_warehouse, people(5, payload=json.dumps({"cart_value": 10})))
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.updates) == ("success", 5, 0)
    assert klaviyo_profile(sandbox.base_url, "p_00002")["properties"] == {"lifeline_cart_value": 10}
    assert requests.get(f"{sandbox.base_url}/klaviyo/api/lists", headers=KLAVIYO, timeout=10).json()["data"] == []
    changed = people(5, payload=json.dumps({"cart_value": 10}))
    changed[2].update(first_name="Renamed", payload=json.dumps({"cart_value": 99}))
    set_audience(duck_warehouse, changed)
    second = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (second.adds, second.updates) == (0, 1)
    profile = klaviyo_profile(sandbox.base_url, "p_00002")
    assert profile["first_name"] == "Renamed" and profile["properties"] == {"lifeline_cart_value": 99}
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (third.status, third.adds, third.updates, third.message) == ("success", 0, 0, "up to date: nothing to send")


def test_a_row_leaving_an_upsert_model_is_kept_at_the_destination_and_resent_on_return(duck_warehouse, sandbox,
                                                                                      tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "upsert", list_name=None)
    set_audience(duck_warehouse, people(10))
    run_sync(duck_warehouse, sync, env=ENV, progress=False)
    set_audience(duck_warehouse, people(5))  # half leave: far above max_remove_share, but upsert deletes nothing
    left = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (left.status, left.removes) == ("success", 0) and "5 rows left the model" in left.message
    assert klaviyo_profile(sandbox.base_url, "p_00009") is not None
    assert query(duck_warehouse, "select status, count(*) from lifeline_state.sync_state group by status "
                                 "order by status") == [("departed", 5), ("synced", 5)]
    set_audience(duck_warehouse, people(10))
    back = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert back.adds == 5  # a return is upserted again (against what was sent: tests/sync/test_upsert_return.py)


def test_upsert_still_applies_max_add_multiple(duck_warehouse, sandbox, tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "upsert", list_name=None)
    set_audience(duck_warehouse, people(2))
    run_sync(duck_warehouse, sync, env=ENV, progress=False)
    set_audience(duck_warehouse, people(40))
    blocked = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert blocked.status == "blocked" and "would add 38 to 2" in blocked.message
    assert klaviyo_profile(sandbox.base_url, "p_00039") is None


# -- mirror ---------------------------------------------------------------------------------------
def test_mirror_removes_hand_added_strangers_and_adopts_a_hand_added_model_row(duck_warehouse, sandbox, tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "mirror")
    sync.safety.max_remove_share = 1
    set_audience(duck_warehouse, people(250))  # three pages of GET /api/lists/{id}/profiles
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).adds == 250
    add_by_hand(sandbox.base_url, "cart", ["stranger1@example.com", "stranger2@example.com", "person300@example.com"])
    set_audience(duck_warehouse, people(250) + people(1, start=300))  # person300 joins the model too
    result = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (result.status, result.adds, result.removes, result.strangers) == ("success", 1, 2, 2)
    held = klaviyo_list(sandbox.base_url, "cart")
    assert set(held) == {p["email"] for p in people(250) + people(1, start=300)}
    assert held["person300@example.com"] == "p_00300"  # adopted: the add matched the hand-added profile
    again = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (again.adds, again.removes, again.message) == (0, 0, "up to date: nothing to send")


def test_mirror_safety_limit_counts_strangers(duck_warehouse, sandbox, tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "mirror")
    set_audience(duck_warehouse, people(10))
    run_sync(duck_warehouse, sync, env=ENV, progress=False)
    add_by_hand(sandbox.base_url, "cart", [f"stranger{i}@example.com" for i in range(4)])
    set_audience(duck_warehouse, people(9))  # one regular removal + four strangers = 5 of 14
    blocked = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert blocked.status == "blocked", blocked.message
    assert "would remove 5 of 14 members, 4 of them not added by Lifeline" in blocked.message
    assert len(klaviyo_list(sandbox.base_url, "cart")) == 14  # nothing was sent
    dry = run_sync(duck_warehouse, sync, env=ENV, progress=False, dry_run=True)
    assert (dry.status, dry.removes) == ("dry_run", 5) and "4 of the removals are members Lifeline did not add" \
        in dry.message
    forced = run_sync(duck_warehouse, sync, env=ENV, progress=False, force=True)
    assert (forced.status, forced.removes, forced.strangers) == ("success", 5, 4)
    assert set(klaviyo_list(sandbox.base_url, "cart")) == {p["email"] for p in people(9)}


def test_mirror_mailchimp_on_postgres_pages_the_audience_and_archives_strangers(pg_warehouse, sandbox, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setattr(mailchimp, "MEMBERS_PAGE", 4)  # the reads cross several offset pages
    path = tmp_path / "syncs.yml"
    path.write_text(f"""syncs:
  - name: mc_mirror
    source: {{audience: cart_abandonment, channel: email}}
    mode: mirror
    destination: {{type: mailchimp, list_id: cart01, base_url: "{sandbox.base_url}/mailchimp", api_key_env: MC_KEY}}
    safety: {{max_remove_share: 0.5}}
""")
    [sync] = load_syncs(path)
    set_audience(pg_warehouse, people(10))
    assert run_sync(pg_warehouse, sync, env=ENV, progress=False).adds == 10
    auth = ("any", TOKEN)
    for email, status in (("stranger@example.com", "subscribed"), ("gone@example.com", "unsubscribed")):
        requests.put(f"{sandbox.base_url}/mailchimp/3.0/lists/cart01/members/{subscriber_hash(email)}", auth=auth,
                     json={"email_address": email, "status": status}, timeout=10).raise_for_status()
    set_audience(pg_warehouse, people(9))
    result = run_sync(pg_warehouse, sync, env=ENV, progress=False)
    assert (result.status, result.removes, result.strangers) == ("success", 2, 1), result.message
    body = requests.get(f"{sandbox.base_url}/mailchimp/3.0/lists/cart01/members", params={"count": 1000}, auth=auth,
                        timeout=10).json()
    status = {m["email_address"]: m["status"] for m in body["members"]}
    assert status["stranger@example.com"] == "archived" and status["person9@example.com"] == "archived"
    assert status["gone@example.com"] == "unsubscribed"  # not subscribed: not a member Lifeline manages
    assert sorted(e for e, s in status.items() if s == "subscribed") == sorted(p["email"] for p in people(9))


# -- dry runs, timeouts ---------------------------------------------------------------------------
def test_a_dry_run_is_recorded_with_the_planned_counts_and_sends_nothing(duck_warehouse, sandbox, tmp_path):
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "add_remove")
    set_audience(duck_warehouse, people(7))
    dry = run_sync(duck_warehouse, sync, env={}, progress=False, dry_run=True)  # no credentials needed
    assert (dry.status, dry.adds) == ("dry_run", 7)
    assert query(duck_warehouse, "select status, adds, updates, removes from lifeline_state.sync_runs") == \
        [("dry_run", 7, 0, 0)]
    assert query(duck_warehouse, "select count(*) from lifeline_state.sync_state") == [(0,)]
    assert requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()["klaviyo"]["profiles"] == 0


@pytest.mark.parametrize("value, problem", [("0", "greater than 0"), ("-5", "greater than 0"),
                                            ("soon", "valid number")])
def test_timeout_must_be_a_positive_number(tmp_path, value, problem):
    path = tmp_path / "syncs.yml"
    path.write_text("syncs:\n  - name: s\n    source: {audience: a}\n    destination:\n      type: braze\n"
                    f"      base_url: u\n      timeout_s: {value}\n")
    with pytest.raises(SyncConfigError, match=rf"syncs.yml:7: syncs.0.destination.timeout_s: .*{problem}"):
        load_syncs(path)


@pytest.mark.parametrize("kind", ["klaviyo", "mailchimp", "braze"])
def test_every_request_uses_the_configured_timeout(duck_warehouse, sandbox, tmp_path, monkeypatch, kind):
    timeouts: list = []
    real_send = requests.Session.send

    def send(self, request, **kwargs):
        timeouts.append(kwargs.get("timeout"))
        return real_send(self, request, **kwargs)

    destination = {"klaviyo": {"list_name": "cart", "api_key_env": "KL_KEY"},
                   "mailchimp": {"list_id": "cart01", "api_key_env": "MC_KEY"},
                   "braze": {"api_key_env": "KL_KEY"}}[kind]
    path = tmp_path / "syncs.yml"
    path.write_text("syncs:\n  - name: t\n    source: {audience: cart_abandonment}\n    mode: mirror\n" if kind != "braze"
                    else "syncs:\n  - name: t\n    source: {audience: cart_abandonment}\n")
    path.write_text(path.read_text() + "    destination: " + json.dumps(
        {"type": kind, "base_url": f"{sandbox.base_url}/{kind}", "timeout_s": 7.5, **destination}) + "\n")
    [sync] = load_syncs(path)
    assert sync.destination.timeout_s == 7.5
    set_audience(duck_warehouse, people(3))
    monkeypatch.setattr(requests.Session, "send", send)
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).status == "success"
    assert timeouts and set(timeouts) == {7.5}
