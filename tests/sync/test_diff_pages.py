"""The diff's seq numbers adds and updates, then removes, 1..N (DuckDB: by position, in the order
the rows were written, without a sort; PostgreSQL: a window, by key within each group); a source
row without a key is in no group. plan.pages reads a diff page as Arrow on DuckDB when every column is text or boolean, and as
DBAPI tuples otherwise: both give the same dicts, and a mapped column of another type keeps the
Python value DuckDB's fetchall gives (a UUID, a timedelta), not Arrow's."""
from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.config import load_syncs
from syncs.plan import DIFF_COLUMNS, DIFF_TABLE, _number_by_position, _page_reader, build_diff, pages
from syncs.state import ensure_state
from syncs.warehouse import STATE_SCHEMA, Warehouse

ROWS = 25


def _diff(conn: sa.Connection, mapped: str = "") -> None:
    """A diff table of ROWS rows (seq 1..ROWS, every 5th a remove), with text, nulls and booleans."""
    conn.execute(sa.text(f"""
        create temporary table {DIFF_TABLE} as
        select 'k' || lpad(cast(i as varchar), 3, '0') as key, md5(cast(i as varchar)) as row_hash,
               case when i % 3 = 0 then null else 'u' || cast(i as varchar) || '@x.com' end as email,
               cast(null as varchar) as phone, 'Zoë' as first_name, '' as last_name, '{{"n":' || cast(i as varchar) || '}}' as payload,
               case when i % 4 = 0 then 'd' || cast(i as varchar) end as destination_id,
               case when i % 5 = 0 then 'remove' else 'add' end as op, cast(null as varchar) as sent_fields,
               i % 2 = 0 as has_state{mapped}, i as seq
        from range(1, {ROWS + 1}) as t(i)"""))


def _tuples(conn: sa.Connection, columns: tuple[str, ...]) -> list[dict]:
    cursor = conn.connection.cursor()
    cursor.execute(f"select {', '.join(columns)} from {DIFF_TABLE} where op in ('add', 'update') order by seq")
    rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
    cursor.close()
    return rows


def _empty(columns: tuple[str, ...]) -> str:
    return f"select {', '.join(columns)} from {DIFF_TABLE} limit 0"


def test_text_columns_page_as_the_cursor_reads_them(tmp_path):
    engine = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb").engine()
    with engine.connect() as conn:
        _diff(conn)
        extra = ("sent_fields", "has_state")
        assert _page_reader(conn, DIFF_COLUMNS + extra, _empty(DIFF_COLUMNS + extra)).__name__ == "arrow_rows"
        read = [list(page) for page in pages(conn, ("add", "update"), 7, extra)]
        assert [len(page) for page in read] == [6, 6, 5, 3]  # seq ranges of 7, removes left out
        expected = _tuples(conn, DIFF_COLUMNS + extra)
        assert sorted((row for page in read for row in page), key=lambda r: r["key"]) == expected
        assert {type(row["has_state"]) for row in expected} == {bool} and expected[2]["email"] is None
    engine.dispose()


def test_mapped_columns_of_other_types_keep_the_cursors_values(tmp_path):
    engine = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb").engine()
    with engine.connect() as conn:
        _diff(conn, ", uuid '12345678-1234-5678-1234-567812345678' as field__u, interval (i) day as field__i")
        extra = ("sent_fields", "has_state", "field__u", "field__i")
        assert _page_reader(conn, DIFF_COLUMNS + extra, _empty(DIFF_COLUMNS + extra)).__name__ == "tuples"
        rows = [row for page in pages(conn, ("add", "update"), 10, extra) for row in page]
        assert rows[0]["field__u"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
        assert rows[0]["field__i"] == timedelta(days=1)
        assert sorted(rows, key=lambda r: r["key"]) == _tuples(conn, DIFF_COLUMNS + extra)
    engine.dispose()


def test_diff_numbers_adds_and_updates_then_removes(any_warehouse, tmp_path):
    """Source rows stored in reverse key order; p_00020-29 have a state row with another hash
    (updates), p_00030-39 and p_0000a-j (keys before every source key) only a state row (removes),
    the others are new (adds), and one source row has no key."""
    (tmp_path / "syncs.yml").write_text(f"""syncs:
  - name: seq_file
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: file, base_url: "{tmp_path / 'out'}", format: csv}}
""")
    [sync] = load_syncs(tmp_path / "syncs.yml")
    set_audience(any_warehouse, people(30)[::-1] + [{"profile_id": None, "email": "nokey@example.com"}])
    gone = [f"p_{i:05d}" for i in range(39, 29, -1)] + [f"p_0000{c}" for c in "abcdefghij"]
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        conn.execute(sa.text(f"insert into {STATE_SCHEMA}.sync_state (sync_name, key, row_hash, status) "
                             "values (:n, :k, 'old', 'synced')"),
                     [{"n": sync.name, "k": k} for k in [f"p_{i:05d}" for i in range(29, 19, -1)] + gone])
        plan = build_diff(conn, sync)
        numbered = conn.execute(sa.text(f"select seq, key, op from {DIFF_TABLE} order by seq")).fetchall()
    engine.dispose()
    assert (plan.adds, plan.updates, plan.removes) == (20, 10, 20)
    assert [seq for seq, _, _ in numbered] == list(range(1, 51))
    sending = {(key, op) for _, key, op in numbered[:30]}
    assert sending == {(f"p_{i:05d}", "add") for i in range(20)} | {(f"p_{i:05d}", "update") for i in range(20, 30)}
    assert sorted((key, op) for _, key, op in numbered[30:]) == sorted((k, "remove") for k in gone)
    if any_warehouse.kind == "postgres":  # a window numbers each group by key
        assert [key for _, key, _ in numbered[:30]] == [f"p_{i:05d}" for i in range(30)]
        assert [key for _, key, _ in numbered[30:]] == sorted(gone)


def test_numbering_by_position_puts_removes_after_the_others(tmp_path):
    """When the join writes removes among the other rows (its build and probe sides are the
    planner's choice), DuckDB's numbering by position moves them after the others, each group in
    the order it was written."""
    engine = Warehouse(kind="duckdb", duckdb_path=tmp_path / "w.duckdb").engine()
    with engine.connect() as conn:
        _diff(conn)  # written k001..k025, every 5th a remove
        conn.execute(sa.text(f"update {DIFF_TABLE} set seq = null"))
        _number_by_position(conn, mixed=True)
        numbered = conn.execute(sa.text(f"select seq, key, op = 'remove' from {DIFF_TABLE} order by seq")).fetchall()
    engine.dispose()
    keys = [f"k{i:03d}" for i in range(1, ROWS + 1)]
    assert [seq for seq, _, _ in numbered] == list(range(1, ROWS + 1))
    assert [(key, removed) for _, key, removed in numbered] == (
        [(k, False) for i, k in enumerate(keys, 1) if i % 5] + [(k, True) for i, k in enumerate(keys, 1) if not i % 5])
