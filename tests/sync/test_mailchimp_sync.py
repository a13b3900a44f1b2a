"""Mailchimp membership against the sandbox: batches of 500, per-member errors inside a 200, archive on removal."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync

TOKEN = "sandbox-token"
ENV = {"MC_KEY": f"{TOKEN}-us1"}


def config(path: Path, base_url: str) -> Path:
    path.write_text(f"""syncs:
  - name: cart_mailchimp
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: mailchimp, list_id: cart01, base_url: "{base_url}/mailchimp", api_key_env: MC_KEY}}
    safety: {{max_remove_share: 1}}
""")
    return path


def statuses(base_url: str) -> dict[str, str]:
    body = requests.get(f"{base_url}/mailchimp/3.0/lists/cart01/members", params={"count": 1000},
                        auth=("any", TOKEN), timeout=10).json()
    return {m["email_address"]: m["status"] for m in body["members"]}


def test_mailchimp_adds_rejects_per_member_and_archives(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    bad = {"profile_id": "p_bad", "email": "not-an-email"}
    set_audience(duck_warehouse, people(600) + [bad])
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 600, 1)
    assert sorted(statuses(sandbox.base_url).values()) == ["subscribed"] * 600
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select key, code from lifeline_state.rejections")).one() == ("p_bad", "ERROR_GENERIC")
    engine.dispose()
    again = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (again.adds, again.rejections) == (0, 0)  # the bad row is not retried while unchanged
    set_audience(duck_warehouse, people(598))
    removed = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert removed.removes == 2
    held = statuses(sandbox.base_url)
    assert held["person598@example.com"] == "archived" and held["person0@example.com"] == "subscribed"


def test_mailchimp_needs_a_list_id(tmp_path):
    path = tmp_path / "syncs.yml"
    path.write_text("syncs:\n  - name: m\n    source: {audience: a}\n"
                    "    destination: {type: mailchimp, base_url: u, api_key_env: K}\n")
    with pytest.raises(SyncConfigError, match=r"syncs.yml:4: syncs.0.destination: .*needs list_id"):
        load_syncs(path)
