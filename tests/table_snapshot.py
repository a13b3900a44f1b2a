"""Comparable snapshots of warehouse tables, for tests that check an incremental path against a
full refresh."""
from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable

import sqlalchemy as sa

from syncs.warehouse import Warehouse


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith("{"):
        return json.dumps(json.loads(value), sort_keys=True)  # JSON text: key order is not content
    return str(value)


def snapshot(warehouse: Warehouse, relations: Iterable[str], ignored: Collection[str] = ()) -> dict[str, list[tuple]]:
    """Each relation's rows as sorted tuples of text, without the `ignored` columns (stamps of the
    run that wrote a row, which differ between runs by design)."""
    engine = warehouse.engine()
    out = {}
    with engine.connect() as conn:
        for relation in relations:
            columns = [c for c in conn.execute(sa.text(f"select * from {relation} where 1 = 0")).keys()
                       if c not in ignored]
            rows = conn.execute(sa.text(f"select {', '.join(columns)} from {relation}")).fetchall()
            out[relation] = sorted(tuple(_cell(v) for v in row) for row in rows)
    engine.dispose()
    return out


def rows(warehouse: Warehouse, sql: str) -> list[tuple]:
    """The rows of one query, as tuples."""
    engine = warehouse.engine()
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]
    engine.dispose()
    return found


def execute(warehouse: Warehouse, *statements: str) -> None:
    """Runs `statements` in one transaction."""
    engine = warehouse.engine()
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def assert_same_as_full_refresh(warehouse: Warehouse, relations: Collection[str], full_refresh: Callable[[], object],
                                ignored: Collection[str] = ()) -> dict[str, list[tuple]]:
    """Snapshots `relations` as the incremental runs left them, runs `full_refresh()` (a
    --full-refresh build of the same models), and asserts every relation is unchanged; returns the
    full refresh's snapshot."""
    incremental = snapshot(warehouse, relations, ignored)
    full_refresh()
    full = snapshot(warehouse, relations, ignored)
    for relation in relations:
        assert incremental[relation] == full[relation], f"{relation} differs from a full refresh"
    return full
