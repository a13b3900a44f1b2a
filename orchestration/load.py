"""`lifeline load`: raw input files -> the warehouse's `raw` schema.

A folder holds one file or one folder of files per contract table, named after the table
(`events.csv`, `events/part-0.parquet`, `orders.jsonl`, ...). Every column is stored as text, so a
badly typed value never stops a load: staging models parse and quarantine (contract §1).
Unknown extra columns are kept; a missing optional column is added as null; a missing table is
created empty. A file that lacks a required column is refused with an error naming the file and
the column, before anything is written.

Every row of `events`, `message_events`, `customers`, `orders` and `order_items` also gets the
load's stamp in LOAD_STAMP_COLUMN (a timestamp, strictly increasing from one load to the next): the
incremental models reading them take only the rows loaded since their last run
(dbt_project/macros/incremental_events.sql, incremental_orders.sql). Rows already in a table that
lacked the column are stamped 1970-01-01 (loaded before any run that uses stamps); rows appended
later by another tool have no stamp, which makes those models fall back to their occurred_at
window (events) or to a full read (customers, orders, order items). A column of that name in an
input file is ignored.

DuckDB reads the files itself. For PostgreSQL, DuckDB (in memory) reads and streams them in
record batches into `COPY ... FROM STDIN`, so memory stays flat whatever the file size.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from orchestration.contract import RAW_TABLES, RawTable
from orchestration.erased import load_filter, read_hashes
from syncs.warehouse import RAW_SCHEMA, Warehouse

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".jsonl": "json", ".ndjson": "json",
            ".json": "json", ".csv.gz": "csv", ".jsonl.gz": "json"}


# The load stamp (contract §1 keeps unknown extra columns) of the tables the incremental models
# slice by it.
LOAD_STAMP_COLUMN = "_lifeline_loaded_at"
STAMPED_TABLES = ("events", "message_events", "customers", "orders", "order_items")
# What rows loaded before the stamp existed get: earlier than any stamp a load writes.
UNSTAMPED_ROWS = "1970-01-01 00:00:00"


class LoadError(ValueError):
    """Input that cannot be loaded; the message names the file, and the row or column."""


@dataclass
class TableLoad:
    table: str
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    erased_rows: int = 0  # rows dropped because they carry an erased person's identifier (`lifeline forget`)


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    return None


def discover(path: Path) -> dict[str, list[Path]]:
    """Files per contract table under PATH (a folder, or a single file named after a table)."""
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder. Point `lifeline load` at a folder of raw files.")
    found: dict[str, list[Path]] = {}
    entries = [path] if path.is_file() else sorted(path.iterdir())
    for entry in entries:
        stem = entry.name.split(".")[0]
        if stem not in RAW_TABLES:
            continue
        if entry.is_dir():
            files = sorted(f for f in entry.rglob("*") if f.is_file() and _kind(f))
            if files:
                found.setdefault(stem, []).extend(files)
        elif _kind(entry):
            found.setdefault(stem, []).append(entry)
    if not found:
        raise LoadError(
            f"{path}: found no raw tables. Expected files or folders named after the contract tables: "
            + ", ".join(RAW_TABLES)
        )
    return found


def _relation(con: duckdb.DuckDBPyConnection, files: list[Path]) -> duckdb.DuckDBPyRelation:
    kinds = {_kind(f) for f in files}
    if len(kinds) != 1:
        raise LoadError(f"{files[0].parent}: mixes file formats {sorted(kinds)}; use one format per table.")
    kind = kinds.pop()
    names = [str(f) for f in files]
    try:
        if kind == "csv":
            return con.read_csv(names, header=True, all_varchar=True, union_by_name=True,
                                sample_size=-1, encoding="utf-8")
        if kind == "parquet":
            return con.read_parquet(names, union_by_name=True)
        return con.read_json(names, format="newline_delimited")
    except duckdb.Error as exc:
        raise LoadError(f"{names[0]}: cannot be read ({exc})") from exc


def _as_text_sql(rel: duckdb.DuckDBPyRelation, table: RawTable) -> tuple[str, list[str]]:
    """A select list casting every column to text (nested values to JSON) in contract order."""
    present = {c.lower(): (c, str(t)) for c, t in zip(rel.columns, rel.types)}
    items: list[str] = []
    for col in table.columns:
        if col in present:
            name, typ = present[col]
            expr = f'to_json("{name}")' if any(k in typ.upper() for k in ("STRUCT", "MAP", "[]", "LIST")) else f'"{name}"'
            items.append(f'cast({expr} as varchar) as "{col}"')
        else:
            items.append(f'cast(null as varchar) as "{col}"')
    extras = [present[c][0] for c in present if c not in table.columns and c != LOAD_STAMP_COLUMN]
    for name in extras:
        items.append(f'cast("{name}" as varchar) as "{name.lower()}"')
    return ", ".join(items), [e.lower() for e in extras]


def _check_required(rel: duckdb.DuckDBPyRelation, table: RawTable, files: list[Path]) -> None:
    present = {c.lower() for c in rel.columns}
    missing = [c for c in table.required if c not in present]
    if missing:
        raise LoadError(
            f"{files[0]}: table '{table.name}' lacks required column(s) {', '.join(missing)} "
            f"(required: {', '.join(table.required)}). Nothing was loaded."
        )


def load(warehouse: Warehouse, path: Path, replace: bool = False) -> dict[str, TableLoad]:
    """Load every contract table found under PATH; create missing tables empty. Returns per-table counts."""
    return load_files(warehouse, discover(Path(path)), replace=replace)


def load_files(warehouse: Warehouse, discovered: dict[str, list[Path]], replace: bool = False) -> dict[str, TableLoad]:
    """Load the given files per contract table (validating all of them before writing anything)."""
    unknown = sorted(set(discovered) - set(RAW_TABLES))
    if unknown:
        raise LoadError(f"not contract tables: {', '.join(unknown)} (expected one of {', '.join(RAW_TABLES)})")
    reader = duckdb.connect()
    plans: dict[str, tuple[RawTable, duckdb.DuckDBPyRelation, str, list[str], list[Path]]] = {}
    # Validate everything before writing anything.
    for name, files in discovered.items():
        table = RAW_TABLES[name]
        rel = _relation(reader, files)
        _check_required(rel, table, files)
        select_list, extras = _as_text_sql(rel, table)
        plans[name] = (table, rel, select_list, extras, files)

    results: dict[str, TableLoad] = {}
    if warehouse.kind == "duckdb":
        reader.close()
        con = duckdb.connect(str(warehouse.duckdb_path))
        current: list[Path] = []
        try:
            # One transaction for the whole load: a file that fails half-way leaves nothing behind.
            con.execute("begin transaction")
            con.execute(f"create schema if not exists {RAW_SCHEMA}")
            erased = _register_erased(con, read_hashes(con))
            for name, (table, _, select_list, extras, files) in plans.items():
                current = files
                rel = _relation(con, files)
                con.register("_lifeline_incoming", rel)
                try:
                    results[name] = _load_duckdb(con, table, select_list, extras, files, replace, erased)
                finally:
                    con.unregister("_lifeline_incoming")
            for name, table in RAW_TABLES.items():
                con.execute(f"create table if not exists {RAW_SCHEMA}.{name} ({_empty_columns(table, 'varchar')})")
            con.execute("commit")
        except duckdb.Error as exc:
            con.execute("rollback")
            where = ", ".join(str(f) for f in current[:3])
            raise LoadError(f"{where}: cannot be loaded, nothing was written: {exc}") from exc
        finally:
            con.close()
        return results

    engine = warehouse.engine()
    raw = engine.raw_connection()
    current = []
    try:
        cur = raw.cursor()
        cur.execute(f"create schema if not exists {RAW_SCHEMA}")
        erased = _register_erased(reader, read_hashes(cur))
        for name, (table, rel, select_list, extras, files) in plans.items():
            current = files
            results[name] = _load_postgres(cur, reader, rel, table, select_list, extras, files, replace, erased)
        for name, table in RAW_TABLES.items():
            cur.execute(f"create table if not exists {RAW_SCHEMA}.{name} ({_empty_columns(table, 'text')})")
        raw.commit()
    except (duckdb.Error, Exception) as exc:
        raw.rollback()
        if isinstance(exc, LoadError):
            raise
        where = ", ".join(str(f) for f in current[:3])
        raise LoadError(f"{where}: cannot be loaded, nothing was written: {exc}") from exc
    finally:
        raw.close()
        engine.dispose()
        reader.close()
    return results


def _empty_columns(table: RawTable, text_type: str) -> str:
    """The column list of a missing table created empty (with the stamp column where stamped)."""
    columns = [f'"{c}" {text_type}' for c in table.columns]
    if table.name in STAMPED_TABLES:
        columns.append(f'"{LOAD_STAMP_COLUMN}" timestamp')
    return ", ".join(columns)


def _register_erased(con: duckdb.DuckDBPyConnection, hashes: list[str]) -> bool:
    """Make the erased identifiers' hashes readable as `_lifeline_erased(h)`; False when there are none."""
    if not hashes:
        return False
    import pyarrow as pa

    con.register("_lifeline_erased", pa.table({"h": pa.array(hashes, pa.string())}))
    return True


def _kept(con: duckdb.DuckDBPyConnection, table: RawTable, source: str, erased: bool) -> tuple[str, int]:
    """The SQL of the incoming rows to keep, and how many rows it drops for carrying an erased identifier."""
    kept = load_filter(table.name, source, "_lifeline_erased") if erased else None
    if kept is None:
        return source, 0
    total, remaining = (con.execute(f"select count(*) from ({sql}) as t").fetchone()[0] for sql in (source, kept))
    return kept, total - remaining


def _existing_columns_duckdb(con: duckdb.DuckDBPyConnection, name: str) -> list[str] | None:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [RAW_SCHEMA, name]).fetchall()
    return [r[0] for r in rows] or None


def load_stamp() -> str:
    """This load's stamp: the current UTC time as a SQL timestamp literal's text. A clock that goes
    back only costs a full reprocess: the models' row counts notice rows they did not read."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _stamp_sql(table: RawTable, stamp: str, as_type: str = "timestamp") -> str:
    """The select-list item stamping the incoming rows of TABLE ('' for a table not stamped);
    as_type 'varchar' for rows streamed as text (COPY parses it)."""
    return f", cast('{stamp}' as {as_type}) as \"{LOAD_STAMP_COLUMN}\"" if table.name in STAMPED_TABLES else ""


def _add_stamp_column_sql(target: str) -> list[str]:
    """Statements giving an existing table the stamp column: its rows count as loaded before any
    stamp; rows another tool appends later get none (no default)."""
    return [f"alter table {target} add column \"{LOAD_STAMP_COLUMN}\" timestamp default '{UNSTAMPED_ROWS}'",
            f"alter table {target} alter column \"{LOAD_STAMP_COLUMN}\" drop default"]


def _load_duckdb(con, table: RawTable, select_list: str, extras: list[str], files: list[Path],
                 replace: bool, erased: bool = False) -> TableLoad:
    target = f"{RAW_SCHEMA}.{table.name}"
    source, dropped = _kept(con, table, f"select {select_list}{_stamp_sql(table, load_stamp())} from _lifeline_incoming",
                            erased)
    existing = None if replace else _existing_columns_duckdb(con, table.name)
    if existing is None:
        con.execute(f"create or replace table {target} as {source}")
    else:
        for col in extras:
            if col not in existing:
                con.execute(f'alter table {target} add column "{col}" varchar')
        if table.name in STAMPED_TABLES and LOAD_STAMP_COLUMN not in existing:
            for statement in _add_stamp_column_sql(target):
                con.execute(statement)
        con.execute(f"insert into {target} by name {source}")
    rows = con.execute(f"select count(*) from ({source})").fetchone()[0]
    return TableLoad(table.name, files, rows, extras, dropped)


def _load_postgres(cur, reader, rel, table: RawTable, select_list: str, extras: list[str],
                   files: list[Path], replace: bool, erased: bool = False) -> TableLoad:
    """Stream one table into PostgreSQL with COPY, inside the caller's transaction."""
    target = f"{RAW_SCHEMA}.{table.name}"
    stamped = table.name in STAMPED_TABLES
    columns = list(table.columns) + extras + ([LOAD_STAMP_COLUMN] if stamped else [])
    cur.execute("select column_name from information_schema.columns where table_schema = %s and table_name = %s",
                (RAW_SCHEMA, table.name))
    existing = [r[0] for r in cur.fetchall()]
    if replace or not existing:
        cur.execute(f"drop table if exists {target}")
        cur.execute(f"create table {target} (" + ", ".join(
            f'"{c}" ' + ("timestamp" if c == LOAD_STAMP_COLUMN else "text") for c in columns) + ")")
    else:
        for col in extras:
            if col not in existing:
                cur.execute(f'alter table {target} add column "{col}" text')
        if stamped and LOAD_STAMP_COLUMN not in existing:
            for statement in _add_stamp_column_sql(target):
                cur.execute(statement)
    reader.register("_lifeline_incoming", rel)
    try:
        source, dropped = _kept(reader, table, f"select {select_list}{_stamp_sql(table, load_stamp(), 'varchar')} "
                                               "from _lifeline_incoming", erased)
        batches = reader.sql(source).fetch_record_batch(100_000)
        collist = ", ".join(f'"{c}"' for c in columns)
        rows = 0
        for batch in batches:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            for record in zip(*(batch.column(i).to_pylist() for i in range(batch.num_columns))):
                # PostgreSQL text cannot hold NUL: it is dropped (documented repair).
                writer.writerow(["\\N" if v is None else v.replace("\x00", "") for v in record])
            buf.seek(0)
            cur.copy_expert(f"copy {target} ({collist}) from stdin with (format csv, null '\\N')", buf)
            rows += batch.num_rows
    finally:
        reader.unregister("_lifeline_incoming")
    return TableLoad(table.name, files, rows, extras, dropped)
