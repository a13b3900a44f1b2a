"""Raw input batches for tests: one CSV file per raw table, as `lifeline load` reads a folder."""
from __future__ import annotations

import csv
from pathlib import Path

Batch = dict[str, tuple[list[str], list[list[str]]]]  # table -> (header, rows)


def write_batch(root: Path, batch: Batch) -> Path:
    """Writes `<root>/<table>.csv` for every table of `batch` (root must not exist) and returns root."""
    root.mkdir(parents=True)
    for table, (header, rows) in batch.items():
        with (root / f"{table}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    return root
