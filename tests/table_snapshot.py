"""Comparable snapshots of warehouse tables, for tests that check an incremental path against a
full refresh."""
from __future__ import annotations

import json
from collections.abc import Collection, Iterable

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
