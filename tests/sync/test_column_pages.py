"""The column-wise send path (Klaviyo's add without a `fields:` mapping, outside upsert, on DuckDB):
a diff page read as Arrow columns (base.ColumnPage) gives the same Klaviyo job body, the same
sent_fields and the same state as the page of dicts, and a page not acknowledged whole (a
rejection, results out of order) is sorted as its rows. Through the engine: a key twice in the
source, rows with and without state, a rejection, and a page larger than one job's bytes."""
from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sync_helpers import people, set_audience

import syncs.destinations.klaviyo as klaviyo_module
from syncs.config import load_syncs
from syncs.destinations.base import Acknowledged, ColumnPage, RowResult
from syncs.destinations.klaviyo import (KlaviyoClient, KlaviyoList, column_profiles, import_body, import_document,
                                       profile_bytes, profile_json)
from syncs.engine import column_pages, commit_page, run_sync, sort_page, with_sent_fields
from syncs.plan import DIFF_COLUMNS
from syncs.state import ensure_state

PAYLOADS = ['{"tier":"gold","n":{"x":null},"s":"\\u00e9\\""}', '{"a":1,"b":null}', '{"only":null}', None, "[1]",
            "{}", "not json", '{"b":2,"a":1}']


def _rows() -> list[dict]:
    return [{"key": f"k{i}", "row_hash": f"h{i}", "email": ["a@x.com", "", None][i % 3],
             "phone": "+15005550006" if i % 2 else None, "first_name": "Zoë" if i % 4 else "",
             "last_name": None if i % 5 else "L", "payload": text, "destination_id": f"old{i}" if i % 3 == 0 else None,
             "op": "update" if i % 3 == 0 else "add", "has_state": i % 3 == 0}
            for i, text in enumerate(PAYLOADS * 2)]


def _column_page(rows: list[dict]) -> ColumnPage:
    columns = DIFF_COLUMNS + ("has_state",)
    table = pa.table({c: pa.array([r[c] for r in rows], pa.bool_() if c == "has_state" else pa.string())
                      for c in columns})
    [page] = column_pages([table])
    return page


def test_a_column_page_gives_the_dict_pages_profiles_sent_fields_and_rows():
    rows = _rows()
    page = _column_page(rows)
    [dicts] = with_sent_fields([[dict(r) for r in rows]])
    assert page.sent_fields == [r["sent_fields"] for r in dicts]
    assert page.rows() == dicts and page.rows().payloads == dicts.payloads
    profiles = [profile_json(row) for row in rows]
    assert [orjson.dumps(p) for p in column_profiles(page, {})] == profiles
    assert [profile_bytes(p) for p in column_profiles(page, {})] == profiles  # add_columns' split path
    assert orjson.dumps(column_profiles(page)) == b"[" + b",".join(profiles) + b"]"
    for list_id in ("L1", None):  # add_columns' body: one orjson call over the job document
        assert orjson.dumps(import_document(list_id, column_profiles(page))) == import_body(list_id, profiles)


def _state(ok, new) -> tuple[list, list]:
    listed = [(t if isinstance(t, list) else t.to_pylist()) for t in (ok, new)]
    return tuple([(r["key"], r["row_hash"], r["destination_id"], r["sent_fields"]) for r in rows] for rows in listed)


def test_a_page_acknowledged_whole_gives_the_rows_state_as_tables():
    rows = _rows()
    keys = [r["key"] for r in rows]
    [dicts] = with_sent_fields([[dict(r) for r in rows]])
    ok, new, bad, adds = sort_page(_column_page(rows), Acknowledged(keys))
    assert isinstance(ok, pa.Table) and isinstance(new, pa.Table)
    expected_ok, expected_new, _, expected_adds = sort_page(dicts, Acknowledged(keys))
    assert _state(ok, new) == _state(expected_ok, expected_new)
    assert (bad, adds) == ([], expected_adds) and len(ok) + len(new) == len(rows) and len(ok) == 6
    assert {r[2] for r in _state(ok, new)[0]} == {None}  # the old ids: what the destination said (none)


@pytest.mark.parametrize("results", [
    lambda keys: Acknowledged(keys[::-1]),  # every key, out of order
    lambda keys: Acknowledged(keys[:-1]),   # one short
    lambda keys: [RowResult(k, True, destination_id=f"id_{k}") for k in keys[:3]]
    + [RowResult(keys[3], False, code="invalid", message="bad phone")],
])
def test_a_page_not_acknowledged_whole_is_sorted_as_its_rows(results):
    rows = _rows()
    keys = [r["key"] for r in rows]
    [dicts] = with_sent_fields([[dict(r) for r in rows]])
    ok, new, bad, adds = sort_page(_column_page(rows), results(keys))
    expected_ok, expected_new, expected_bad, expected_adds = sort_page(dicts, results(keys))
    assert isinstance(ok, list) and _state(ok, new) == _state(expected_ok, expected_new)
    assert (bad, adds) == (expected_bad, expected_adds)


def test_tables_with_a_key_the_diff_holds_twice_are_upserted(duck_warehouse):
    """acknowledged_whole's tables through commit_page, when the diff holds a key twice (the source
    does; plan.Plan.duplicate_keys): the second page's `new` holds a key the first wrote, and also
    twice itself; DuckDB's sync_state has no primary key to refuse a second row, so `new` is
    upserted: one state row per key, the first page's rows kept, `ok` rows updated."""
    def table(keys: list[str], row_hash: str) -> pa.Table:
        return pa.table({"key": keys, "row_hash": [row_hash] * len(keys), "destination_id": pa.nulls(len(keys), pa.string()),
                         "sent_fields": ['["step"]'] * len(keys)})

    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        commit_page(conn, "cols", table([], "h0"), table(["a", "b", "x"], "h1"), [], new_unique=False)
        commit_page(conn, "cols", table(["x"], "h2"), table(["c", "a", "c"], "h2"), [], new_unique=False)
        rows = conn.execute(sa.text("select key, row_hash || ':' || attempts from lifeline_state.sync_state "
                                    "where sync_name = 'cols' order by key")).fetchall()
    engine.dispose()
    assert rows == [("a", "h2:2"), ("b", "h1:1"), ("c", "h2:1"), ("x", "h2:2")]


def test_add_columns_splits_a_page_over_one_jobs_bytes(sandbox, monkeypatch):
    """A page whose profiles exceed a job's bytes goes in several jobs, its results one per row."""
    client = KlaviyoClient(f"{sandbox.base_url}/klaviyo", "sandbox-token", "2026-07-15", poll_seconds=0.01,
                           rate_limits=False)
    destination = KlaviyoList(client, "column_jobs")
    rows = [dict(r, phone=None, email=f"{r['key']}@example.com") for r in _rows()]
    assert isinstance(destination.add_columns(_column_page(rows)), Acknowledged)
    submitted: list[int] = []
    real_submit = client.submit
    monkeypatch.setattr(client, "submit", lambda keys, body: (submitted.append(len(keys)), real_submit(keys, body))[1])
    monkeypatch.setattr(klaviyo_module, "BATCH_BUDGET", 4 * len(profile_json(rows[0])))
    results = destination.add_columns(_column_page(rows))
    assert len(submitted) > 1 and sum(submitted) == len(rows)
    assert [(r.key, r.ok) for r in results] == [(row["key"], True) for row in rows]
    whole = sum(len(profile_json(row)) + 1 for row in rows)  # what split_jobs counts for one job
    for budget, jobs in ((whole, 1), (whole - 1, 2)):  # the page fits one job exactly as split_jobs decides
        submitted.clear()
        monkeypatch.setattr(klaviyo_module, "BATCH_BUDGET", budget)
        destination.add_columns(_column_page(rows))
        assert len(submitted) == jobs


def _config(tmp_path, base_url: str):
    (tmp_path / "syncs.yml").write_text(f"""syncs:
  - name: klaviyo_cols
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: klaviyo, list_name: cols, base_url: "{base_url}/klaviyo", api_key_env: K,
                   client_rate_limits: false}}
""")
    [sync] = load_syncs(tmp_path / "syncs.yml")
    return sync


def _synced(warehouse) -> dict[str, tuple]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows = {key: (sent_fields, attempts, status) for key, sent_fields, attempts, status in conn.execute(sa.text(
            "select key, sent_fields, attempts, status from lifeline_state.sync_state where sync_name = 'klaviyo_cols'"))}
    engine.dispose()
    return rows


def test_the_engine_sends_klaviyo_pages_as_columns_and_marks_their_state(duck_warehouse, sandbox, tmp_path,
                                                                         monkeypatch):
    """Pages of 3 rows: a key twice in the source (two pages), a rejected phone (its page sorted
    row by row), then a second run with updates and a new row; the state is what each row carried."""
    import syncs.engine as engine_module

    sorted_pages: list[str] = []
    real_sort = engine_module.sort_page
    monkeypatch.setattr(engine_module, "sort_page", lambda batch, results: (
        sorted_pages.append(type(batch).__name__), real_sort(batch, results))[1])
    monkeypatch.setattr(KlaviyoList, "add_batch_size", 3)
    sync = _config(tmp_path, sandbox.base_url)
    members = people(7) + people(1, start=2)  # p_00002 twice: the last row of page 1 and the first of page 2
    members[5]["phone"] = "12345"  # not E.164: rejected
    set_audience(duck_warehouse, members)
    first = run_sync(duck_warehouse, sync, env={"K": "sandbox-token"}, progress=False)
    assert (first.status, first.adds, first.rejections) == ("success", 8 - 1, 1)  # both p_00002 acknowledged
    assert set(sorted_pages) == {"ColumnPage"}
    client = KlaviyoClient(f"{sandbox.base_url}/klaviyo", "sandbox-token", "2026-07-15", rate_limits=False)
    assert {m["key"] for m in KlaviyoList(client, "cols").members()} == {f"p_{i:05d}" for i in range(7)} - {"p_00005"}
    state = _synced(duck_warehouse)
    assert set(state) == {f"p_{i:05d}" for i in range(7)} - {"p_00005"}
    assert {k: v[2] for k, v in state.items()} == dict.fromkeys(state, "synced")

    changed = people(5) + people(1, start=6, payload=json.dumps({"offer": "b", "x": None})) + people(1, start=7)
    set_audience(duck_warehouse, changed)
    second = run_sync(duck_warehouse, sync, env={"K": "sandbox-token"}, progress=False)
    assert (second.status, second.adds, second.updates, second.removes) == ("success", 1, 1, 0)
    state = _synced(duck_warehouse)
    assert state["p_00006"] == ('["offer","x"]', 2, "synced") and state["p_00007"] == ('["step"]', 1, "synced")
    assert state["p_00000"] == ('["step"]', 1, "synced")
    assert run_sync(duck_warehouse, sync, env={"K": "sandbox-token"}, progress=False).message == \
        "up to date: nothing to send"
