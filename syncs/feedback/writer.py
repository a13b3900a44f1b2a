"""Idempotent append of message_events rows to raw.message_events (dedupe on message_id + event).

The rows are written through orchestration.load (a CSV file in a temporary folder handed to
`load_files`), so the table is created and typed exactly as `lifeline load` does it: every column
text, the other contract tables created empty if missing. Rows whose (message_id, event) is
already in the table, or repeated within the batch, are skipped, so a platform that retries a
callback records it once. One writer serialises its appends with a lock; run one receiver per
warehouse.
"""
from __future__ import annotations

import csv
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb
import sqlalchemy as sa

from orchestration.load import load_files
from syncs.feedback.mapping import COLUMNS
from syncs.warehouse import RAW_SCHEMA, Warehouse

TABLE = "message_events"
KEY_CHUNK = 500


class MessageEventWriter:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._lock = threading.Lock()

    def append(self, rows: Iterable[Mapping[str, str | None]]) -> int:
        """Append the rows not yet present; returns how many were written."""
        with self._lock:
            fresh = self._unseen(list(rows))
            if fresh:
                self._write(fresh)
            return len(fresh)

    def _existing_keys(self, message_ids: list[str]) -> set[tuple[str, str]]:
        chunks = [message_ids[i:i + KEY_CHUNK] for i in range(0, len(message_ids), KEY_CHUNK)]
        sql = f"select message_id, lower(trim(event)) from {RAW_SCHEMA}.{TABLE} where message_id in "
        if self.warehouse.kind == "duckdb":
            # Plain duckdb.connect, configured as orchestration.load's, so both can be open in one process.
            with duckdb.connect(str(self.warehouse.duckdb_path)) as con:
                if not con.execute("select count(*) from information_schema.tables where table_schema = ? and "
                                   "table_name = ?", [RAW_SCHEMA, TABLE]).fetchone()[0]:
                    return set()
                return {(m, e) for ids in chunks
                        for m, e in con.execute(sql + f"({', '.join('?' * len(ids))})", ids).fetchall()}
        engine = self.warehouse.engine()
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table(TABLE, schema=RAW_SCHEMA):
                    return set()
                query = sa.text(sql + ":ids").bindparams(sa.bindparam("ids", expanding=True))
                return {(m, e) for ids in chunks for m, e in conn.execute(query, {"ids": ids})}
        finally:
            engine.dispose()

    def _unseen(self, rows: list[Mapping[str, str | None]]) -> list[Mapping[str, str | None]]:
        if not rows:
            return []
        seen = self._existing_keys(sorted({str(r["message_id"]) for r in rows}))
        fresh = []
        for r in rows:
            key = (str(r["message_id"]), str(r["event"]))
            if key not in seen:
                seen.add(key)
                fresh.append(r)
        return fresh

    def _write(self, rows: list[Mapping[str, str | None]]) -> None:
        with tempfile.TemporaryDirectory(prefix="lifeline-feedback-") as tmp:
            path = Path(tmp) / f"{TABLE}.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            load_files(self.warehouse, {TABLE: [path]})
