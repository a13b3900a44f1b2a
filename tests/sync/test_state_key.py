"""sync_state's one row per (sync_name, key): PostgreSQL enforces it with a primary key; on DuckDB
the engine keeps it (syncs.state.SYNC_STATE_KEY: the primary key's ART index cost half of each
page's state write), and a DuckDB state table made with the key is rebuilt without it, rows kept."""
from __future__ import annotations

import sqlalchemy as sa

from syncs.state import SYNC_STATE_COLUMNS, ensure_state, mark_synced
from syncs.warehouse import STATE_SCHEMA

ROWS = [("s", "k1", "h1", None, "synced", 1, None, "2026-11-24 10:00:00", '["email"]'),
        ("s", "k2", "h2", "d2", "departed", 3, None, "2026-11-24 11:00:00", None),
        ("t", "k1", "h3", None, "synced", 2, "429 once", None, '[]')]


def primary_keys(conn: sa.Connection) -> list[str]:
    return [name for (name,) in conn.execute(sa.text(
        "select constraint_type from information_schema.table_constraints "
        "where table_schema = :s and table_name = 'sync_state'"), {"s": STATE_SCHEMA}) if name == "PRIMARY KEY"]


def state(conn: sa.Connection) -> list[tuple]:
    return [tuple(str(v) if v is not None else None for v in row) for row in conn.execute(sa.text(
        f"select * from {STATE_SCHEMA}.sync_state order by sync_name, key"))]


def test_duckdb_state_made_with_a_primary_key_is_rebuilt_without_it(duck_warehouse):
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f"create schema {STATE_SCHEMA}"))
        conn.execute(sa.text(f"create table {STATE_SCHEMA}.sync_state ({SYNC_STATE_COLUMNS}, primary key (sync_name, key))"))
        conn.execute(sa.text(f"insert into {STATE_SCHEMA}.sync_state values "
                             + ", ".join(f"({', '.join('null' if v is None else repr(v) for v in row)})" for row in ROWS)))
        conn.commit()
        before = state(conn)
        assert primary_keys(conn) == ["PRIMARY KEY"] and len(before) == 3
        ensure_state(conn)
        assert primary_keys(conn) == [] and state(conn) == before
        ensure_state(conn)  # once: a table without the key is left as it is
        assert state(conn) == before
        assert [c for (c,) in conn.execute(sa.text(
            "select column_name from information_schema.columns where table_schema = :s and table_name = 'sync_state' "
            "order by ordinal_position"), {"s": STATE_SCHEMA})] == [
            "sync_name", "key", "row_hash", "destination_id", "status", "attempts", "last_error", "synced_at", "sent_fields"]
    engine.dispose()


def test_postgres_state_keeps_its_primary_key_and_duckdb_has_none(any_warehouse):
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        assert primary_keys(conn) == ([] if any_warehouse.kind == "duckdb" else ["PRIMARY KEY"])
    engine.dispose()


def test_upserted_rows_end_as_the_primary_keys_upsert_ends(any_warehouse):
    """mark_synced's upsert: DuckDB's delete-and-insert (no primary key) writes what PostgreSQL's
    ON CONFLICT writes: the row's hash, destination id and status, attempts + 1, the error cleared,
    sent_fields kept when not given; a key the sync does not hold is inserted; another sync's row of
    the same key is untouched."""
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        conn.execute(sa.text(f"insert into {STATE_SCHEMA}.sync_state values "
                             + ", ".join(f"({', '.join('null' if v is None else repr(v) for v in row)})" for row in ROWS)))
        conn.commit()
        mark_synced(conn, "s", [{"key": "k1", "row_hash": "n1", "destination_id": "d1", "sent_fields": None},
                                {"key": "k2", "row_hash": "n2", "destination_id": None, "sent_fields": '["phone"]'},
                                {"key": "k3", "row_hash": "n3", "destination_id": None, "sent_fields": '["email"]'}])
        conn.commit()
        rows = conn.execute(sa.text(f"select sync_name, key, row_hash, destination_id, status, attempts, last_error, "
                                    f"sent_fields from {STATE_SCHEMA}.sync_state order by sync_name, key")).fetchall()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("s", "k1", "n1", "d1", "synced", 2, None, '["email"]'),
        ("s", "k2", "n2", None, "synced", 4, None, '["phone"]'),
        ("s", "k3", "n3", None, "synced", 1, None, '["email"]'),
        ("t", "k1", "h3", None, "synced", 2, "429 once", "[]")]


def test_duckdb_upsert_marks_a_key_the_page_holds_twice_once(duck_warehouse):
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        twice = [{"key": "k9", "row_hash": h, "destination_id": None, "sent_fields": "[]"} for h in ("a", "b")]
        mark_synced(conn, "s", [], twice, new_unique=False)
        mark_synced(conn, "s", twice)
        conn.commit()
        rows = conn.execute(sa.text(f"select key, attempts from {STATE_SCHEMA}.sync_state")).fetchall()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("k9", 2)]
