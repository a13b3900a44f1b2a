"""File destination: one atomically written CSV/Parquet file per batch; reruns write only the diff."""
from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sync_helpers import people, set_audience

from syncs.config import load_syncs
from syncs.engine import run_sync


def config(path: Path, folder: Path, file_format: str) -> Path:
    path.write_text(f"""syncs:
  - name: cart_file
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: file, base_url: "{folder}", format: {file_format}}}
""")
    return path


def read(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_file_destination_writes_members_then_only_the_diff(duck_warehouse, tmp_path, file_format):
    out = tmp_path / "out"
    [sync] = load_syncs(config(tmp_path / "syncs.yml", out, file_format))
    set_audience(duck_warehouse, people(10) + people(2, start=90, is_holdout=True))
    assert run_sync(duck_warehouse, sync, env={}, progress=False).adds == 10
    [first] = sorted(out.iterdir())
    rows = read(first)
    assert sorted(r["key"] for r in rows) == [f"p_{i:05d}" for i in range(10)] and {r["op"] for r in rows} == {"add"}
    assert run_sync(duck_warehouse, sync, env={}, progress=False).adds == 0
    assert len(list(out.iterdir())) == 1  # nothing new written when nothing changed
    set_audience(duck_warehouse, people(9))
    assert run_sync(duck_warehouse, sync, env={}, progress=False).removes == 1
    files = sorted(out.iterdir())
    assert len(files) == 2 and not any(f.name.startswith(".tmp-") for f in files)
    [removal] = [f for f in files if "-remove-" in f.name]
    assert [(r["key"], r["op"]) for r in read(removal)] == [("p_00009", "remove")]
