"""The engine against a second destination type: the sandbox's signed webhook receiver."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import requests
import sqlalchemy as sa

from syncs.config import load_syncs
from syncs.engine import run_sync
from syncs.state import ensure_state
from sync_helpers import people, set_audience

TOKEN = "sandbox-token"


def config(path: Path, base_url: str) -> Path:
    path.write_text(f"""syncs:
  - name: cart_hook
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: webhook, base_url: "{base_url}/webhook/cart", api_key_env: HOOK_SECRET}}
""")
    return path


def deliveries(base_url: str) -> list[dict]:
    return [d["body"] for d in requests.get(f"{base_url}/_sandbox/webhook/cart", timeout=10).json()["deliveries"]]


def test_webhook_receives_signed_adds_then_only_the_diff(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(1_200) + people(3, start=5_000, is_holdout=True))
    first = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert (first.status, first.adds) == ("success", 1_200)
    sent = deliveries(sandbox.base_url)
    assert [len(d["rows"]) for d in sent] == [500, 500, 200]  # batch size respected, holdout never sent
    assert {r["key"] for d in sent for r in d["rows"]} == {f"p_{i:05d}" for i in range(1_200)}
    set_audience(duck_warehouse, people(1_199))
    second = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert (second.adds, second.removes) == (0, 1)
    assert deliveries(sandbox.base_url)[-1] == {"sync": "cart_hook", "op": "remove", "rows": [{"key": "p_01199"}]}


def test_wrong_secret_is_refused_and_nothing_is_marked(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": "not-the-secret"}, progress=False)
    assert result.status == "failed" and "refused the signature" in result.message
    assert "not-the-secret" not in result.message
    assert deliveries(sandbox.base_url) == []
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lifeline_state.sync_state")).scalar() == 0
    engine.dispose()
    retry = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert retry.adds == 3  # the failed run lost nothing


def test_unsupported_mode_fails_clearly(duck_warehouse, tmp_path):
    """A webhook cannot be read back, so it cannot mirror: the error names the sync, the mode and the
    destinations that can (derived from the clients' protocols). Nothing is sent or recorded."""
    path = tmp_path / "syncs.yml"
    path.write_text("syncs:\n  - name: to_hook\n    source: {audience: welcome}\n    mode: mirror\n"
                    "    destination: {type: webhook, base_url: http://127.0.0.1:1/hook, api_key_env: X}\n")
    [sync] = load_syncs(path)
    result = run_sync(duck_warehouse, sync, env={}, progress=False)
    assert result.status == "failed" and "sync to_hook" in result.message, result.message
    assert "does not support mode mirror (it supports: add_remove)" in result.message
    assert "destinations supporting mirror: klaviyo, mailchimp." in result.message


def test_a_second_run_of_the_same_sync_is_refused_while_the_first_holds_the_lock(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3))
    engine = duck_warehouse.engine()
    with engine.connect() as conn:  # a live process on this host (our parent) holds the lock
        ensure_state(conn)
        conn.execute(sa.text("insert into lifeline_state.sync_locks values ('cart_hook', :o, current_timestamp)"),
                     {"o": f"{socket.gethostname()}:{os.getppid()}"})
        conn.commit()
    engine.dispose()
    blocked = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert blocked.status == "blocked" and "already running" in blocked.message
    assert deliveries(sandbox.base_url) == []
    engine = duck_warehouse.engine()
    with engine.begin() as conn:  # the holder dies: its lock is taken over
        conn.execute(sa.text("update lifeline_state.sync_locks set owner = :o"),
                     {"o": f"{socket.gethostname()}:999999999"})
    engine.dispose()
    assert run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False).adds == 3


def test_missing_source_table_fails_clearly_before_any_request(any_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    result = run_sync(any_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert result.status == "failed" and "audience_members does not exist" in result.message
    assert "lifeline build" in result.message
    assert deliveries(sandbox.base_url) == []


def test_unimplemented_mode_fails_clearly_instead_of_running_as_add_remove(duck_warehouse, sandbox, tmp_path):
    path = config(tmp_path / "syncs.yml", sandbox.base_url)
    path.write_text(path.read_text() + "    mode: trigger\n")
    [sync] = load_syncs(path)
    set_audience(duck_warehouse, people(2))
    result = run_sync(duck_warehouse, sync, env={"HOOK_SECRET": TOKEN}, progress=False)
    assert result.status == "failed" and "mode trigger is not implemented" in result.message
    assert deliveries(sandbox.base_url) == []
