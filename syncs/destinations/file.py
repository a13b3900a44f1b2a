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
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=f".{self.file_format}")
        try:
            if self.file_format == "parquet":
                os.close(fd)
                pq.write_table(pa.Table.from_pylist(records, schema=pa.schema([(c, pa.string()) for c in COLUMNS])),
                               tmp)
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
        return [RowResult(r["key"], True, destination_id=target.name) for r in rows]

    def add(self, rows: list[dict]) -> list[RowResult]:
        return self._write("add", rows)

    def remove(self, rows: list[dict]) -> list[RowResult]:
        return self._write("remove", rows)
