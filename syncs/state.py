"""The `lifeline_state` schema: per-row sync state, run records, rejections and locks.

State lives in the warehouse, next to the data it describes: a laptop disk can vanish, and a
diff needs both sides in one place. A row's state is written only after the destination
acknowledged that row, so a crash at any point followed by a rerun converges.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa

from syncs.warehouse import STATE_SCHEMA

if TYPE_CHECKING:
    import pyarrow as pa

# sync_state holds one row per (sync_name, key). On PostgreSQL its primary key also enforces that;
# on DuckDB the engine alone keeps it (as on warehouses whose keys are not enforced, e.g. Snowflake
# and BigQuery): a row is inserted only when the diff showed no state row for its key and no other
# row of the diff has that key (plan.Plan.duplicate_keys), and the sync's lock keeps other runs out.
# DuckDB's primary key is an ART index whose inserts and checkpoints cost half of each page's state
# write with random profile ids (35 -> 18 ms a 10,000-row page; benchmarks/results.md, fifteenth session).
SYNC_STATE_COLUMNS = """sync_name varchar not null, key varchar not null, row_hash varchar, destination_id varchar,
        status varchar, attempts integer, last_error varchar, synced_at timestamp, sent_fields varchar"""
SYNC_STATE_KEY = ", primary key (sync_name, key)"

DDL = [
    f"create schema if not exists {STATE_SCHEMA}",
    f"create table if not exists {STATE_SCHEMA}.sync_state ({SYNC_STATE_COLUMNS}{{sync_state_key}})",
    f"""create table if not exists {STATE_SCHEMA}.sync_runs (
        run_id varchar primary key, sync_name varchar, started_at timestamp, finished_at timestamp,
        status varchar, adds integer, updates integer, removes integer, rejections integer, retries integer,
        duration_s double precision, message varchar)""",
    f"""create table if not exists {STATE_SCHEMA}.rejections (
        sync_name varchar not null, key varchar not null, code varchar, message varchar, payload_hash varchar,
        first_seen timestamp, last_seen timestamp, primary key (sync_name, key))""",
    f"""create table if not exists {STATE_SCHEMA}.trigger_keys (
        sync_name varchar not null, idempotency_key varchar not null, status varchar not null,
        destination_id varchar, created_at timestamp, confirmed_at timestamp,
        primary key (sync_name, idempotency_key))""",  # trigger mode: 'pending' before a send, 'sent'/'failed' after
    f"""create table if not exists {STATE_SCHEMA}.sync_locks (
        sync_name varchar primary key, owner varchar, acquired_at timestamp)""",
]


class SyncLocked(RuntimeError):
    """Another run of the same sync holds the lock."""


DEPARTED = "departed"  # sync_state.status of an upsert row that left the model (the destination kept it)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# Columns added after a table's first release: (table, column, type), added to existing state tables.
MIGRATIONS = [("sync_state", "sent_fields", "varchar")]  # syncs.sent_fields; existing rows keep everything


def ensure_state(conn: sa.Connection) -> None:
    duckdb = conn.dialect.name == "duckdb"
    for statement in DDL:
        conn.execute(sa.text(statement.replace("{sync_state_key}", "" if duckdb else SYNC_STATE_KEY)))
    if duckdb:
        drop_state_key(conn)
    for table, column, kind in MIGRATIONS:
        present = conn.execute(sa.text(
            "select count(*) from information_schema.columns where table_schema = :s and table_name = :t "
            "and column_name = :c"), {"s": STATE_SCHEMA, "t": table, "c": column}).scalar()
        if not present:  # checked first: ALTER TABLE locks the table on PostgreSQL even when it changes nothing
            conn.execute(sa.text(f"alter table {STATE_SCHEMA}.{table} add column {column} {kind}"))
    conn.commit()


def drop_state_key(conn: sa.Connection) -> None:
    """DuckDB: a sync_state made before the engine kept its rows unique itself has a primary key;
    the table is rebuilt without it, rows unchanged, in one transaction (DuckDB cannot drop a
    constraint). Once per warehouse; the check is a catalog read."""
    keyed = conn.execute(sa.text(
        "select count(*) from duckdb_constraints() where schema_name = :s and table_name = 'sync_state' "
        "and constraint_type = 'PRIMARY KEY'"), {"s": STATE_SCHEMA}).scalar()
    if not keyed:
        return
    rebuilt = f"{STATE_SCHEMA}.sync_state_unkeyed"
    conn.execute(sa.text(f"drop table if exists {rebuilt}"))
    conn.execute(sa.text(f"create table {rebuilt} ({SYNC_STATE_COLUMNS})"))
    conn.execute(sa.text(f"insert into {rebuilt} select * from {STATE_SCHEMA}.sync_state"))
    conn.execute(sa.text(f"drop table {STATE_SCHEMA}.sync_state"))
    conn.execute(sa.text(f"alter table {rebuilt} rename to sync_state"))
    conn.commit()


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: assume alive
    try:
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def acquire_lock(conn: sa.Connection, sync_name: str, wait_s: float = 0.0, poll_s: float = 1.0) -> None:
    """One run per sync: a lock row in the warehouse (plus an advisory lock on PostgreSQL).
    A lock left by a process that died on this host is taken over. While another live run holds
    it, wait up to `wait_s` seconds, then raise SyncLocked."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _try_lock(conn, sync_name)
            return
        except SyncLocked:
            conn.rollback()
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_s)


def _try_lock(conn: sa.Connection, sync_name: str) -> None:
    if conn.dialect.name == "postgresql":
        got = conn.execute(sa.text("select pg_try_advisory_lock(hashtext(:n))"), {"n": f"lifeline:{sync_name}"}).scalar()
        if not got:
            raise SyncLocked(f"sync {sync_name} is already running (PostgreSQL advisory lock held); "
                             "wait for it to finish, or rerun with --wait SECONDS")
    row = conn.execute(sa.text(f"select owner from {STATE_SCHEMA}.sync_locks where sync_name = :n"),
                       {"n": sync_name}).fetchone()
    if row is not None:
        if _owner_alive(row[0]) and row[0] != owner_id():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("select pg_advisory_unlock(hashtext(:n))"), {"n": f"lifeline:{sync_name}"})
            raise SyncLocked(f"sync {sync_name} is already running (lock held by {row[0]}); wait for it to finish "
                             "or rerun with --wait SECONDS; if that process is gone, delete its row in "
                             "lifeline_state.sync_locks")
        conn.execute(sa.text(f"delete from {STATE_SCHEMA}.sync_locks where sync_name = :n"), {"n": sync_name})
    conn.execute(sa.text(f"insert into {STATE_SCHEMA}.sync_locks values (:n, :o, :t)"),
                 {"n": sync_name, "o": owner_id(), "t": now()})
    conn.commit()


def release_lock(conn: sa.Connection, sync_name: str) -> None:
    conn.execute(sa.text(f"delete from {STATE_SCHEMA}.sync_locks where sync_name = :n and owner = :o"),
                 {"n": sync_name, "o": owner_id()})
    conn.commit()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("select pg_advisory_unlock(hashtext(:n))"), {"n": f"lifeline:{sync_name}"})
        conn.commit()


ACK_TABLE = "_lifeline_ack"
ACK_COLUMNS = ("key", "row_hash", "destination_id", "sent_fields")
_STAGE_CHUNK = 500  # rows per multi-row VALUES statement, for dialects without a bulk path


@contextmanager
def staged(conn: sa.Connection, rows: list[dict] | pa.Table) -> Iterator[str]:
    """The relation to read acknowledged (key, row_hash, destination_id, sent_fields) rows from, for
    the statements run inside the block. DuckDB: the rows as an Arrow table registered as a view
    (scanned in place: no copy into a temporary table, a fifth of mark_synced's CPU per page), or
    the Arrow table given (those four columns: engine.acknowledged_whole); elsewhere a temporary
    table, emptied and filled in bulk."""
    raw = conn.connection.driver_connection
    if not isinstance(rows, list) and conn.dialect.name != "duckdb":
        rows = rows.to_pylist()
    if conn.dialect.name == "duckdb":
        view = f"{ACK_TABLE}_rows"
        raw.register(view, _arrow(ACK_COLUMNS, rows) if isinstance(rows, list) else rows)
        try:
            yield view
        finally:
            raw.unregister(view)
        return
    conn.execute(sa.text(f"create temporary table if not exists {ACK_TABLE} "
                         "(key varchar, row_hash varchar, destination_id varchar, sent_fields varchar)"))
    conn.execute(sa.text(f"delete from {ACK_TABLE}"))
    stage_rows(conn, ACK_TABLE, ACK_COLUMNS, rows)
    yield ACK_TABLE


def drop_staged(conn: sa.Connection) -> None:
    """After rolling back a transaction in which a statement on the staged rows failed: on DuckDB the
    view's registration outlives the rollback (its unregister was undone with the transaction) and
    would refuse the next `staged`; drop it. Elsewhere `staged` empties its table itself."""
    if conn.dialect.name == "duckdb":
        conn.execute(sa.text(f"drop view if exists {ACK_TABLE}_rows"))


def _arrow(columns: tuple[str, ...], rows: list[dict]):
    import pyarrow as pa

    return pa.table({c: pa.array([row.get(c) for row in rows], pa.string()) for c in columns})


def stage_rows(conn: sa.Connection, table: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Insert rows (dicts of text values) into an existing table in bulk: an Arrow table scanned by
    DuckDB, psycopg2's execute_values on PostgreSQL (a VALUES statement with 1,500 bound parameters
    per 500 rows cost two thirds of a file-destination sync), multi-row VALUES elsewhere."""
    if not rows:
        return
    names = ", ".join(columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "duckdb":
        view = f"{table}_rows"
        raw.register(view, _arrow(columns, rows))
        try:
            conn.execute(sa.text(f"insert into {table} ({names}) select {names} from {view}"))
        finally:
            raw.unregister(view)
        return
    if conn.dialect.name == "postgresql":
        from psycopg2.extras import execute_values

        with raw.cursor() as cursor:
            execute_values(cursor, f"insert into {table} ({names}) values %s",
                           [tuple(row.get(c) for c in columns) for row in rows], page_size=5_000)
        return
    for start in range(0, len(rows), _STAGE_CHUNK):
        chunk = rows[start:start + _STAGE_CHUNK]
        marks = ", ".join("(" + ", ".join(f":{c}{i}" for c in columns) + ")" for i in range(len(chunk)))
        params = {f"{c}{i}": row.get(c) for i, row in enumerate(chunk) for c in columns}
        conn.execute(sa.text(f"insert into {table} ({names}) values {marks}"), params)


_INSERT_ACKED = (f"insert into {STATE_SCHEMA}.sync_state (sync_name, key, row_hash, destination_id, status, attempts, "
                 "last_error, synced_at, sent_fields) "
                 "select :sync_name, key, row_hash, destination_id, 'synced', {attempts}, null, :synced_at, sent_fields from {acked}")
_ON_CONFLICT = f"""on conflict (sync_name, key) do update set row_hash = excluded.row_hash,
    sent_fields = coalesce(excluded.sent_fields, {STATE_SCHEMA}.sync_state.sent_fields),
    destination_id = excluded.destination_id, status = 'synced', last_error = null,
    attempts = {STATE_SCHEMA}.sync_state.attempts + 1, synced_at = excluded.synced_at"""


def mark_synced(conn: sa.Connection, sync_name: str, rows: list[dict] | pa.Table,
                new: list[dict] | pa.Table | None = None, clear_rejections: bool = True,
                new_unique: bool = True) -> None:
    """Record acknowledged rows: key, row_hash, destination_id, sent_fields (the JSON list of fields
    the row carried, syncs.sent_fields; kept as it was when not given) and clear their old rejections.
    `rows` are upserted; `new` rows, which had no state row when the diff was built (the sync's lock
    keeps it so), are inserted without the conflict check (a quarter of the upsert's CPU per page).
    A `new` row that has a state row after all (the source holds its key twice) raises
    sa.exc.IntegrityError where sync_state has its primary key (PostgreSQL): roll back and mark the
    page again with every row in `rows`. On DuckDB (no primary key, see SYNC_STATE_KEY) the upsert
    is _upsert_acked, and `new_unique=False` (the diff holds some key twice: plan.Plan.duplicate_keys)
    marks `new` rows so too, one state row per key.
    `clear_rejections=False` when the sync has no rejections (has_rejections): the delete, a
    statement per page, is skipped. `rows` and `new` may be Arrow tables of the four columns (`staged`)."""
    keyed = conn.dialect.name != "duckdb"
    for acknowledged, upsert in ((new, not new_unique), (rows, True)):
        if not acknowledged:
            continue
        with staged(conn, acknowledged) as acked:
            params = {"sync_name": sync_name, "synced_at": now()}
            insert = _INSERT_ACKED.format(acked=acked, attempts=1)
            if not upsert:
                conn.execute(sa.text(insert), params)
            elif keyed:
                conn.execute(sa.text(f"{insert} {_ON_CONFLICT}"), params)
            else:
                _upsert_acked(conn, acked, params)
            if clear_rejections:
                conn.execute(sa.text(f"delete from {STATE_SCHEMA}.rejections where sync_name = :n "
                                     f"and key in (select key from {acked})"), {"n": sync_name})


MARKED_TABLE = "_lifeline_marked"


def _upsert_acked(conn: sa.Connection, acked: str, params: dict) -> None:
    """DuckDB's upsert of acknowledged rows into sync_state without a primary key: what _ON_CONFLICT
    does, as a delete of the rows the sync holds for those keys (by rowid, found in one join) and one
    insert of every key's new row. A key the page holds twice is marked once (either row: both were
    acknowledged). Every column is written as the upsert writes it, so a new row is the updated one;
    DuckDB's UPDATE of 10,000 random rows of a 1M-row state cost ~490 ms of CPU, ON CONFLICT with
    the primary key ~500, this ~95 (micro-benchmark, fifteenth session)."""
    conn.execute(sa.text(f"""
        create or replace temporary table {MARKED_TABLE} as
        select acked.key, acked.row_hash, acked.destination_id, coalesce(acked.sent_fields, state.sent_fields) as sent_fields,
               case when state.rowid is null then 1 else state.attempts + 1 end as attempts, state.rowid as state_row
        from (select * from {acked} qualify row_number() over (partition by key) = 1) as acked
        left join {STATE_SCHEMA}.sync_state as state on state.sync_name = :sync_name and state.key = acked.key"""), params)
    conn.execute(sa.text(f"delete from {STATE_SCHEMA}.sync_state "
                         f"where rowid in (select state_row from {MARKED_TABLE} where state_row is not null)"))
    conn.execute(sa.text(_INSERT_ACKED.format(acked=MARKED_TABLE, attempts="attempts")), params)
    conn.execute(sa.text(f"drop table {MARKED_TABLE}"))


def has_rejections(conn: sa.Connection, sync_name: str) -> bool:
    """Whether the sync has any rejection recorded (the sync's lock keeps other runs from adding one)."""
    return conn.execute(sa.text(f"select exists (select 1 from {STATE_SCHEMA}.rejections where sync_name = :n)"),
                        {"n": sync_name}).scalar()


def mark_departed(conn: sa.Connection, sync_name: str, keys: list[str]) -> None:
    """Upsert: the rows left the model and the destination keeps them. Their state stays, with what
    they carried (sent_fields) and their destination_id, as status 'departed': no longer members,
    and a return is sent as an add that clears what the row no longer carries (plan.build_diff)."""
    if keys:
        with staged(conn, [{"key": k} for k in keys]) as acked:
            conn.execute(sa.text(f"update {STATE_SCHEMA}.sync_state set status = '{DEPARTED}' where sync_name = :n "
                                 f"and key in (select key from {acked})"), {"n": sync_name})


def mark_removed(conn: sa.Connection, sync_name: str, keys: list[str]) -> None:
    """The destination removed the rows: their state is deleted."""
    if keys:
        with staged(conn, [{"key": k} for k in keys]) as acked:
            conn.execute(sa.text(f"delete from {STATE_SCHEMA}.sync_state where sync_name = :n "
                                 f"and key in (select key from {acked})"), {"n": sync_name})


def record_rejections(conn: sa.Connection, sync_name: str, rejected: list[dict]) -> None:
    """Permanent per-row errors: not retried until the row's hash changes."""
    if not rejected:
        return
    conn.execute(sa.text(
        f"""insert into {STATE_SCHEMA}.rejections (sync_name, key, code, message, payload_hash, first_seen, last_seen)
            values (:sync_name, :key, :code, :message, :payload_hash, :seen, :seen)
            on conflict (sync_name, key) do update set code = excluded.code, message = excluded.message,
                payload_hash = excluded.payload_hash, last_seen = excluded.last_seen"""),
        [dict(r, sync_name=sync_name, seen=now()) for r in rejected])


def record_run(conn: sa.Connection, run: dict) -> None:
    conn.execute(sa.text(
        f"""insert into {STATE_SCHEMA}.sync_runs values (:run_id, :sync_name, :started_at, :finished_at, :status,
            :adds, :updates, :removes, :rejections, :retries, :duration_s, :message)"""), run)
    conn.commit()
