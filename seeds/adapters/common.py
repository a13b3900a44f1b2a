"""What every dataset adapter shares: its error type, and writing contract tables as Parquet."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.contract import RAW_TABLES


class AdapterError(ValueError):
    """Input an adapter cannot convert; the message names the file, and the line and column."""


def bad_value(src: Path, line: int, column: str, value: str, expected: str) -> AdapterError:
    return AdapterError(f"{src}, line {line}, column {column}: {value!r} is not {expected}. "
                        "Fix or delete that line and run the conversion again; nothing was written.")


def read_text(src: Path) -> str:
    """The file's text: UTF-8 (with or without BOM), else Windows-1252 (the UCI files' encoding)."""
    if not src.is_file():
        raise AdapterError(f"{src}: no such file. Pass the path of the dataset file itself.")
    data = src.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def write_tables(tables: dict[str, pa.Table], out_dir: Path) -> dict[str, int]:
    """Write ``out_dir/<table>.parquet`` for each table, and remove other contract-table Parquet
    files left there by an earlier conversion, so a folder never mixes two datasets. Files are
    written to a temporary folder first and moved in only when all of them were written."""
    unknown = set(tables) - set(RAW_TABLES)
    if unknown:
        raise ValueError(f"not contract tables: {sorted(unknown)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=out_dir))
    try:
        for name, table in tables.items():
            pq.write_table(table, staging / f"{name}.parquet")
        for name in RAW_TABLES:
            target = out_dir / f"{name}.parquet"
            if name in tables:
                os.replace(staging / f"{name}.parquet", target)
            elif target.exists():
                target.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: table.num_rows for name, table in tables.items()}
