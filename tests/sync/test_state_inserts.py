"""The state of acknowledged rows that had no state row when the diff was built is written with a
plain insert (no conflict check); rows with a state row are upserted. A key that has a state row
by the time its page is marked (the source holds it twice) falls back to the upsert for the page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sync_helpers import people, set_audience

import syncs.engine as engine_module
from syncs.config import load_syncs
from syncs.engine import commit_page, run_sync
from syncs.state import ensure_state, mark_synced

SYNC = "state_file"


def file_sync(tmp_path: Path):
    path = tmp_path / "syncs.yml"
    path.write_text(f"""syncs:
  - name: {SYNC}
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: file, base_url: "{tmp_path / 'out'}", format: csv}}
""")
    [sync] = load_syncs(path)
    return sync


def state_rows(warehouse) -> dict[str, tuple]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows = {key: (row_hash, attempts, status) for key, row_hash, attempts, status in conn.execute(sa.text(
            "select key, row_hash, attempts, status from lifeline_state.sync_state where sync_name = :n"),
            {"n": SYNC})}
    engine.dispose()
    return rows


def test_new_rows_are_inserted_and_rows_with_state_upserted(any_warehouse, tmp_path, monkeypatch):
    calls: list[tuple[list[str], list[str]]] = []  # (upserted keys, inserted keys) per page

    def spy(conn, sync_name, rows, new=None, clear_rejections=True, new_unique=True):
        calls.append((sorted(r["key"] for r in rows), sorted(r["key"] for r in new or ())))
        mark_synced(conn, sync_name, rows, new, clear_rejections, new_unique)

    monkeypatch.setattr(engine_module, "mark_synced", spy)
    sync = file_sync(tmp_path)
    set_audience(any_warehouse, people(4))
    assert run_sync(any_warehouse, sync, env={}, progress=False).adds == 4
    assert calls == [([], ["p_00000", "p_00001", "p_00002", "p_00003"])]
    first = state_rows(any_warehouse)
    assert {k: v[1:] for k, v in first.items()} == {f"p_{i:05d}": (1, "synced") for i in range(4)}

    calls.clear()
    changed = people(4) + people(1, start=4)
    changed[1]["payload"] = json.dumps({"step": 2})
    set_audience(any_warehouse, changed)
    result = run_sync(any_warehouse, sync, env={}, progress=False)
    assert (result.adds, result.updates) == (1, 1)
    assert calls == [(["p_00001"], ["p_00004"])]
    after = state_rows(any_warehouse)
    assert after["p_00001"][1:] == (2, "synced") and after["p_00001"][0] != first["p_00001"][0]
    assert after["p_00004"][1:] == (1, "synced")
    assert after["p_00000"] == first["p_00000"]


def test_a_new_key_with_state_by_its_page_falls_back_to_the_upsert(any_warehouse):
    """The source holding a key twice, in two pages. PostgreSQL (sync_state's primary key): the
    second page's plain insert conflicts; the page is rolled back and marked again with every row
    upserted, the earlier page's state kept. DuckDB (no primary key): the diff counted the repeated
    key, and the engine marks `new` rows as an upsert (new_unique=False): the same state."""
    unique = any_warehouse.kind != "duckdb"
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        acked = {"destination_id": None, "sent_fields": '["step"]'}
        commit_page(conn, SYNC, [], [dict(acked, key="a", row_hash="h1"), dict(acked, key="b", row_hash="h1")], [],
                    new_unique=unique)
        commit_page(conn, SYNC, [], [dict(acked, key="c", row_hash="h2"), dict(acked, key="a", row_hash="h2")], [],
                    new_unique=unique)
        rows = conn.execute(sa.text("select key, row_hash, attempts from lifeline_state.sync_state "
                                    "where sync_name = :n order by key"), {"n": SYNC}).fetchall()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("a", "h2", 2), ("b", "h1", 1), ("c", "h2", 1)]


def one_row_per_key(warehouse) -> bool:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows, keys = conn.execute(sa.text("select count(*), count(distinct key) from lifeline_state.sync_state "
                                          "where sync_name = :n"), {"n": SYNC}).one()
    engine.dispose()
    return rows == keys


def key_in_two_audiences(warehouse, tmp_path: Path, monkeypatch, rows_per_page: int):
    """A file sync without an audience filter, p_00000 in two audiences (two source rows, adjacent in
    key order), pages of `rows_per_page` rows."""
    from syncs.destinations.file import FileDestination

    monkeypatch.setattr(FileDestination, "add_batch_size", rows_per_page)
    path = tmp_path / "syncs.yml"
    path.write_text(f"""syncs:
  - name: {SYNC}
    source: {{channel: email}}
    destination: {{type: file, base_url: "{tmp_path / 'out'}", format: csv}}
""")
    set_audience(warehouse, people(3) + people(1, audience="welcome", payload=json.dumps({"step": 9})))
    [sync] = load_syncs(path)
    return sync


def test_a_sync_whose_source_holds_a_key_twice_in_two_pages_succeeds(any_warehouse, tmp_path, monkeypatch):
    """Without an audience filter a profile in two audiences is two source rows; pages of one row put
    them in different pages: the second page falls back to the upsert, as the upsert alone did, and
    the rollback of its failed insert keeps the diff (committed before the first page)."""
    sync = key_in_two_audiences(any_warehouse, tmp_path, monkeypatch, rows_per_page=1)
    result = run_sync(any_warehouse, sync, env={}, progress=False)
    assert result.status == "success" and result.adds + result.updates == 4
    state = state_rows(any_warehouse)
    assert sorted(state) == ["p_00000", "p_00001", "p_00002"] and one_row_per_key(any_warehouse)
    assert state["p_00000"][1] == 2  # marked twice: inserted, then upserted


def test_a_key_twice_in_one_page_ends_as_the_upsert_alone_ends(any_warehouse, tmp_path, monkeypatch):
    """Both rows of the key in the first page: the plain insert fails, the page's rollback keeps the
    diff (committed before the first page) and the upsert decides, as before: DuckDB takes the
    statement, PostgreSQL refuses to update a row twice in one statement and the sync fails with
    that error, marking nothing."""
    sync = key_in_two_audiences(any_warehouse, tmp_path, monkeypatch, rows_per_page=2)
    if any_warehouse.kind == "duckdb":
        assert run_sync(any_warehouse, sync, env={}, progress=False).status == "success"
        assert sorted(state_rows(any_warehouse)) == ["p_00000", "p_00001", "p_00002"] and one_row_per_key(any_warehouse)
        return
    with pytest.raises(sa.exc.DBAPIError, match="(?i)second time") as failed:
        run_sync(any_warehouse, sync, env={}, progress=False)
    assert "_lifeline_diff" not in str(failed.value)
    assert state_rows(any_warehouse) == {}
