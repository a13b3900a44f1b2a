"""Per-source cursors of the feedback pullers in lifeline_state.feedback_cursors (source, cursor_value, updated_at)."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from syncs.warehouse import STATE_SCHEMA, Warehouse

TABLE = f"{STATE_SCHEMA}.feedback_cursors"


class CursorStore:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def _ensure(self, conn: sa.Connection) -> None:
        conn.execute(sa.text(f"create schema if not exists {STATE_SCHEMA}"))
        conn.execute(sa.text(f"create table if not exists {TABLE} (source varchar primary key, "
                             "cursor_value varchar not null, updated_at varchar not null)"))

    def get(self, source: str) -> str | None:
        engine = self.warehouse.engine()
        try:
            with engine.begin() as conn:
                self._ensure(conn)
                found = conn.execute(sa.text(f"select cursor_value from {TABLE} where source = :s"), {"s": source}).first()
                return found[0] if found else None
        finally:
            engine.dispose()

    def set(self, source: str, cursor: str) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        engine = self.warehouse.engine()
        try:
            with engine.begin() as conn:
                self._ensure(conn)
                conn.execute(sa.text(f"delete from {TABLE} where source = :s"), {"s": source})
                conn.execute(sa.text(f"insert into {TABLE} (source, cursor_value, updated_at) values (:s, :c, :u)"),
                             {"s": source, "c": cursor, "u": now})
        finally:
            engine.dispose()
