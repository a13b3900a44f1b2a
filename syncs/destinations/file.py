"""File destination: each batch of adds or removes becomes one CSV or Parquet file, written
atomically (temporary file in the same folder, then os.replace), so a reader never sees half a file.

Files are named `<sync>-<UTC time>-<op>-<n>.<ext>` under the folder given as base_url and hold
key, op and the synced fields. A crash after a file lands but before the state commit repeats
those rows in a later file (at-least-once): readers should treat files as upserts by key.
"""
from __future__ import annotations

import csv
import os
import tempfile
from datetime import datetime, timezone
from itertools import count
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from syncs.destinations.base import RowResult

COLUMNS = ("key", "op", "email", "phone", "first_name", "last_name", "payload")
BATCH_ROWS = 50_000


class FileDestination:
    add_batch_size = BATCH_ROWS
    remove_batch_size = BATCH_ROWS
    calls_per_second = 100.0
    calls_per_add_batch = 1
    forget_batch_size = BATCH_ROWS

    def __init__(self, folder: str, sync_name: str, file_format: str = "csv"):
        self.folder = Path(folder)
        self.sync_name = sync_name
        self.file_format = file_format
        self.retries = [0]
        self._seq = count(1)

    def _write(self, op: str, rows: list[dict]) -> list[RowResult]:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        target = self.folder / f"{self.sync_name}-{stamp}-{op}-{next(self._seq)}.{self.file_format}"
        records = [{c: (op if c == "op" else r.get(c)) for c in COLUMNS} for r in rows]
        _replace_atomically(target, records)
        return [RowResult(r["key"], True, destination_id=target.name) for r in rows]

    def add(self, rows: list[dict]) -> list[RowResult]:
        return self._write("add", rows)

    def remove(self, rows: list[dict]) -> list[RowResult]:
        return self._write("remove", rows)

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """GDPR deletion: rewrite (atomically) every file of this sync without the rows whose key,
        email or phone is one of theirs."""
        keys = {r["key"] for r in rows}
        emails = {r["email"].strip().lower() for r in rows if r.get("email")}
        phones = {r["phone"] for r in rows if r.get("phone")}

        def theirs(record: dict) -> bool:
            return (record.get("key") in keys or (record.get("email") or "").strip().lower() in emails
                    or record.get("phone") in phones)

        for path in sorted(self.folder.glob(f"{self.sync_name}-*")) if self.folder.is_dir() else []:
            if path.suffix not in (".csv", ".parquet"):
                continue
            records = _read(path)
            kept = [r for r in records if not theirs(r)]
            if len(kept) != len(records):
                _replace_atomically(path, kept)
        return [RowResult(r["key"], True) for r in rows]


def _read(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with path.open(newline="", encoding="utf-8") as handle:
        return [{c: (v if v != "" else None) for c, v in row.items()} for row in csv.DictReader(handle)]


def _replace_atomically(target: Path, records: list[dict]) -> None:
    """Write records to target through a temporary file in the same folder and os.replace."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        if target.suffix == ".parquet":
            os.close(fd)
            pq.write_table(pa.Table.from_pylist(records, schema=pa.schema([(c, pa.string()) for c in COLUMNS])), tmp)
        else:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(records)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
