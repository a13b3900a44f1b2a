"""Braze against the sandbox on 127.0.0.1 and a real DuckDB warehouse: upsert of user attributes in
requests of at most 75 objects, per-object errors inside a "success" answer recorded as rejections,
the lifeline_audiences array attribute for add_remove, 429 waited out until X-RateLimit-Reset, and
forget() through /users/delete."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.config import load_syncs
from syncs.engine import run_sync
from syncs.erasure import forget_one
from syncs.sandbox.server import run_in_thread

TOKEN = "sandbox-token"
ENV = {"BRAZE_KEY": TOKEN}


def config(path: Path, base_url: str, mode: str = "upsert", name: str = "braze_cart",
           audience: str = "cart_abandonment") -> Path:
    path.write_text(f"""syncs:
  - name: {name}
    source: {{audience: {audience}, channel: email}}
    mode: {mode}
    destination: {{type: braze, base_url: "{base_url}/braze", api_key_env: BRAZE_KEY, client_rate_limits: false}}
    safety: {{max_remove_share: 1, max_add_multiple: 1000}}
""")
    return path


def users(base_url: str, keys: list[str]) -> dict[str, dict]:
    body = requests.post(f"{base_url}/braze/users/export/ids", json={"external_ids": keys},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    return {u["external_id"]: u for u in body["users"] if u.get("external_id")}


def scalar(warehouse, sql: str):
    engine = warehouse.engine()
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).fetchall()
    engine.dispose()
    return value


@pytest.fixture
def wire(monkeypatch) -> list[tuple[float, requests.PreparedRequest, requests.Response]]:
    """Every request the client puts on the wire, with the time it was sent and its answer."""
    seen: list = []
    real_send = requests.Session.send

    def send(self, request, **kwargs):
        sent = time.time()
        response = real_send(self, request, **kwargs)
        seen.append((sent, request, response))
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    return seen


def test_upsert_stays_within_75_objects_and_sets_attributes(duck_warehouse, sandbox, tmp_path, wire):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(200, payload=json.dumps({"cart_value": 42})))
    result = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (result.status, result.adds) == ("success", 200)
    sizes = [len(json.loads(r.body)["attributes"]) for _, r, _ in wire if r.path_url.endswith("/users/track")]
    assert sizes == [75, 75, 50]  # the sandbox answers 400 above 75: every request was accepted
    held = users(sandbox.base_url, ["p_00000", "p_00199"])
    assert held["p_00000"]["email"] == "person0@example.com" and held["p_00000"]["lifeline_cart_value"] == 42
    assert "lifeline_audiences" not in held["p_00000"]  # upsert sets attributes, no membership
    wire.clear()
    again = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (again.adds, again.updates) == (0, 0) and wire == []


def test_per_object_errors_are_rejections_not_retried_until_the_row_changes(duck_warehouse, sandbox, tmp_path,
                                                                            wire):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    bad = {"profile_id": "p_bad", "email": "person-bad@example.com", "phone": "12345"}  # not E.164
    set_audience(duck_warehouse, people(4) + [bad])
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 4, 1)
    [(key, code, message)] = scalar(duck_warehouse, "select key, code, message from lifeline_state.rejections")
    assert (key, code) == ("p_bad", "invalid_object") and "phone" in message and "12345" not in message
    assert set(users(sandbox.base_url, [p["profile_id"] for p in people(4)] + ["p_bad"])) == \
        {p["profile_id"] for p in people(4)}
    wire.clear()
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).rejections == 0
    assert wire == []  # the rejected row is not sent again while it is unchanged
    set_audience(duck_warehouse, people(4) + [dict(bad, phone="+14155550123")])
    fixed = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (fixed.adds, fixed.rejections) == (1, 0)
    assert scalar(duck_warehouse, "select count(*) from lifeline_state.rejections") == [(0,)]
    assert users(sandbox.base_url, ["p_bad"])["p_bad"]["phone"] == "+14155550123"


def test_add_remove_is_the_lifeline_audiences_array(duck_warehouse, sandbox, tmp_path):
    [cart] = load_syncs(config(tmp_path / "cart.yml", sandbox.base_url, mode="add_remove"))
    [welcome] = load_syncs(config(tmp_path / "welcome.yml", sandbox.base_url, mode="add_remove",
                                  name="braze_welcome", audience="welcome"))
    set_audience(duck_warehouse, people(3) + [dict(p, audience="welcome") for p in people(2)])
    assert run_sync(duck_warehouse, cart, env=ENV, progress=False).adds == 3
    assert run_sync(duck_warehouse, welcome, env=ENV, progress=False).adds == 2
    held = users(sandbox.base_url, ["p_00000", "p_00002"])
    assert held["p_00000"]["lifeline_audiences"] == ["cart_abandonment", "welcome"]
    assert held["p_00002"]["lifeline_audiences"] == ["cart_abandonment"]
    set_audience(duck_warehouse, people(2)[1:] + [dict(p, audience="welcome") for p in people(2)])
    left = run_sync(duck_warehouse, cart, env=ENV, progress=False)
    assert (left.status, left.removes) == ("success", 2)
    held = users(sandbox.base_url, ["p_00000", "p_00001", "p_00002"])
    assert held["p_00000"]["lifeline_audiences"] == ["welcome"]      # the other audience stays
    assert held["p_00001"]["lifeline_audiences"] == ["cart_abandonment", "welcome"]
    assert held["p_00002"]["lifeline_audiences"] == []                # the user stays, without the value


def test_a_429_is_waited_out_until_x_ratelimit_reset(duck_warehouse, tmp_path, monkeypatch):
    """Braze sends no Retry-After: the retry (inside urllib3, so watched at its connection pool)
    waits until X-RateLimit-Reset instead of backing off blindly."""
    from urllib3.connectionpool import HTTPConnectionPool

    answers: list[tuple[float, int, dict]] = []
    other_client: list[bool] = []  # [True] while the other client sends, [True, True] after
    real = HTTPConnectionPool._make_request

    def use_up_the_window(base_url: str) -> None:
        """Another client uses up this second's window just before the sync's first request (the
        windows are aligned to the clock: start early in a second, so that all three land in it
        however long the sync took to start on a loaded machine)."""
        if time.time() % 1 > 0.3:
            time.sleep(1 - time.time() % 1)
        for _ in range(2):
            other = requests.post(f"{base_url}/braze/users/track", json={"attributes": [{"external_id": "x"}]},
                                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert other.ok, other.status_code

    def make_request(self, conn, method, url, *args, **kwargs):
        if "/users/track" in url and not answers and not other_client:
            other_client.append(True)  # its own requests pass through here unrecorded
            use_up_the_window(server.base_url)
            other_client.append(True)
        sent = time.time()
        response = real(self, conn, method, url, *args, **kwargs)
        if "/users/track" in url and len(other_client) != 1:
            answers.append((sent, response.status, {k.lower(): v for k, v in response.headers.items()}))
        return response

    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, rate_limits=True,
                       limit_overrides={"braze:users_track": [(2, 1)]}) as server:
        [sync] = load_syncs(config(tmp_path / "syncs.yml", server.base_url))
        set_audience(duck_warehouse, people(200))
        monkeypatch.setattr(HTTPConnectionPool, "_make_request", make_request)
        result = run_sync(duck_warehouse, sync, env=ENV, progress=False)
        monkeypatch.undo()
        assert (result.status, result.adds) == ("success", 200) and result.retries >= 1
        throttled = [i for i, (_, status, _) in enumerate(answers) if status == 429]
        assert throttled, "the test did not provoke a 429"
        for i in throttled:
            assert "retry-after" not in answers[i][2]
            assert answers[i + 1][0] >= int(answers[i][2]["x-ratelimit-reset"]) - 0.05  # waited for the reset
        assert len(throttled) <= 2  # waited out, not hammered
        assert len(users(server.base_url, [p["profile_id"] for p in people(200)])) == 200


def test_forget_deletes_the_user_by_external_id_email_and_phone(duck_warehouse, sandbox, tmp_path, wire):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3))
    run_sync(duck_warehouse, sync, env=ENV, progress=False)
    requests.post(f"{sandbox.base_url}/braze/users/track", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                  json={"attributes": [{"email": "person1@example.com", "first_name": "by hand"}]})
    wire.clear()
    outcome = forget_one(sync, [{"key": "p_00001", "email": "person1@example.com", "phone": "+14155550101",
                                 "destination_id": "p_00001"}], ENV)
    assert outcome.status == "deleted", outcome
    bodies = [json.loads(r.body) for _, r, _ in wire]
    assert [list(b) for b in bodies] == [["external_ids"], ["email_addresses"], ["phone_numbers"]]  # one type each
    assert set(users(sandbox.base_url, ["p_00000", "p_00001", "p_00002"])) == {"p_00000", "p_00002"}
    by_email = requests.post(f"{sandbox.base_url}/braze/users/export/ids", json={"email_address": "person1@example.com"},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()["users"]
    assert by_email == []


def test_a_wrong_key_fails_clearly_and_marks_nothing(duck_warehouse, sandbox, tmp_path):
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync, env={"BRAZE_KEY": "wrong-key"}, progress=False)
    assert result.status == "failed" and "Braze refused the REST API key" in result.message
    assert "wrong-key" not in result.message and "BRAZE_KEY" in result.message
    assert scalar(duck_warehouse, "select count(*) from lifeline_state.sync_state") == [(0,)]
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).adds == 3  # nothing was lost


def test_acknowledged_rows_clear_rejections_once_the_sync_has_any(duck_warehouse, sandbox, tmp_path, monkeypatch):
    """The rejection delete of each page (mark_synced) runs only when the sync has a rejection: none
    before its first (nothing to clear), from the page after one is recorded in the same run on."""
    import syncs.destinations.braze as braze_module
    import syncs.engine as engine_module

    monkeypatch.setattr(braze_module.BrazeUsers, "upsert_batch_size", 1)  # one row a page
    clearing: list[bool] = []
    real_commit_page = engine_module.commit_page

    def spy(conn, sync_name, ok, new, bad, clear_rejections=True, new_unique=True):
        clearing.append(clear_rejections)
        real_commit_page(conn, sync_name, ok, new, bad, clear_rejections, new_unique)

    monkeypatch.setattr(engine_module, "commit_page", spy)
    [sync] = load_syncs(config(tmp_path / "syncs.yml", sandbox.base_url))
    members = people(3)
    members[1]["phone"] = "12345"  # not E.164: p_00001, the second page, is rejected
    set_audience(duck_warehouse, members)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.adds, first.rejections, clearing) == (2, 1, [False, False, True])
    clearing.clear()
    members[1]["phone"] = "+14155550123"
    set_audience(duck_warehouse, members + people(1, start=3))
    fixed = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (fixed.adds, fixed.rejections, clearing) == (2, 0, [True, True])
    assert scalar(duck_warehouse, "select count(*) from lifeline_state.rejections") == [(0,)]
