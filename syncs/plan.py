"""The diff, computed by SQL in the warehouse: the sync's source rows against lifeline_state.

The diff is materialised as a temporary table `_lifeline_diff` (op: add | update | remove) and read
back in pages, ranges of its seq numbers, so Python never holds the whole audience and the
same connection can commit state between pages (DuckDB allows one connection per process)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import sqlalchemy as sa

from syncs.config import SyncConfig
from syncs.sent_fields import mapped_column, mapped_columns
from syncs.state import DEPARTED
from syncs.warehouse import STATE_SCHEMA

if TYPE_CHECKING:
    import pyarrow as pa

DIFF_TABLE = "_lifeline_diff"
PAGE_ORDER = "case when op = 'remove' then 1 else 0 end, key"  # PostgreSQL's seq: adds and updates by key, then removes
DIFF_COLUMNS = ("key", "row_hash", "email", "phone", "first_name", "last_name", "payload", "destination_id", "op")


class SourceMissing(RuntimeError):
    """The sync's source model is not in the warehouse (dbt has not built it)."""


class FieldMissing(SourceMissing):
    """syncs.yml maps a field to a column the source model does not have."""


def check_source(conn: sa.Connection, sync: SyncConfig, schema: str) -> None:
    if not sa.inspect(conn).has_table(sync.source.model, schema=schema):
        raise SourceMissing(f"sync {sync.name}: table {schema}.{sync.source.model} does not exist in the warehouse; "
                            f"run `lifeline build` first (nothing was sent)")
    if not sync.fields:
        return
    # the columns as source_sql sees them (duckdb_engine's get_columns needs pg_collation, absent in DuckDB)
    columns = {c.lower() for c in conn.execute(sa.text(f"select * from {sync.source.model} limit 0")).keys()}
    missing = [(a, c) for a, c in sorted(sync.fields.items()) if c not in columns]
    if missing:
        named = ", ".join(f"{a} (column {c})" for a, c in missing)
        raise FieldMissing(f"sync {sync.name}: syncs.yml `fields` names {named}, which {schema}.{sync.source.model} "
                           f"does not have (its columns: {', '.join(sorted(columns))}); add the column to the model, "
                           f"or remove the field from `fields` in syncs.yml (the destination then clears it). "
                           f"Nothing was sent and the sync's state is unchanged.")


def source_sql(sync: SyncConfig) -> tuple[str, dict]:
    """Rows to be in the destination: key, row_hash (md5 over the synced fields) and the fields.
    With a `fields:` mapping, its columns (as field__<attribute>) and the mapping itself are part of
    row_hash, so a mapping change re-sends the rows; without one the hash is what it always was."""
    filters = ["not is_holdout", "channel = :channel"]
    params: dict = {"channel": sync.source.channel}
    if sync.source.audience:
        filters.append("audience = :audience")
        params["audience"] = sync.source.audience
    mapping = sorted((sync.fields or {}).items())
    mapped_hash = "".join(f" || '|' || case when {c} is null then 'N' else 'V' || cast({c} as varchar) end"
                          for _, c in mapping)
    if mapping:
        params["fields_signature"] = ",".join(f"{a}={c}" for a, c in mapping)
        mapped_hash = " || '|' || :fields_signature" + mapped_hash
    mapped = "".join(f", {c} as {mapped_column(a)}" for a, c in mapping)
    sql = f"""
        select
            profile_id as key,
            md5(coalesce(email, '') || '|' || coalesce(phone, '') || '|' || coalesce(first_name, '') || '|'
                || coalesce(last_name, '') || '|' || coalesce(payload, ''){mapped_hash}) as row_hash,
            email, phone, first_name, last_name, payload{mapped}
        from {sync.source.model}
        where {' and '.join(filters)}"""
    return sql, params


@dataclass
class Plan:
    adds: int = 0
    updates: int = 0
    removes: int = 0
    strangers: int = 0        # mirror: destination members Lifeline did not put there (removed too)
    released: int = 0         # upsert: rows that left the model (kept at the destination, state kept as 'departed')
    destination_members: int | None = None  # mirror: members read from the destination
    skipped_rejected: int = 0
    current: int = 0
    duplicate_keys: int = 0   # DuckDB: rows of the diff (not removes) that may repeat another's key (the source holds it twice)
    batches: int = 0
    api_calls: int = 0
    seconds_at_limits: float = 0.0
    notes: list[str] = field(default_factory=list)


def build_diff(conn: sa.Connection, sync: SyncConfig) -> Plan:
    """One pass over source and state (a full outer join); rows numbered `seq` 1..N, adds and
    updates before removes, so a page is a seq range that DuckDB's zone maps (or PostgreSQL's
    index) find without rescanning the diff (PostgreSQL: by key within each group, so a page's
    state rows go into a small part of sync_state's primary-key index; DuckDB's sync_state has no
    index, syncs.state.SYNC_STATE_KEY).

    A state row with status 'departed' (upsert: the row left the model, the destination kept it;
    syncs.state.mark_departed) is no member: it is never removed, and when the row returns it is an
    'add' carrying the state's sent_fields and destination_id, so the fields it no longer carries
    are cleared (syncs.sent_fields) as for a row that never left. `has_state`: the row had a state
    row (departed included) when the diff was built; the others' state is a plain insert (mark_synced)."""
    source, params = source_sql(sync)
    params["name"] = sync.name
    mapped = "".join(f", source.{c}" for c in mapped_columns(sync))
    mapped_out = "".join(f", {c}" for c in mapped_columns(sync))
    # DuckDB writes the rows unsorted and numbers them by position (rowid, consecutive in a new
    # table; uncommitted rows' start high), renumbering them with the removes last only when the
    # diff has both kinds (see _number_by_position). An `order by op, key` cost the initial diff of
    # 1M members ~0.7 s of CPU (0.8-1.0 -> 1.5-1.7 s: the sort, and compressing and decompressing
    # every column for it), which paid only while sync_state had a primary-key index on DuckDB.
    duckdb = conn.dialect.name == "duckdb"
    seq = "cast(null as bigint)" if duckdb else f"row_number() over (order by {PAGE_ORDER})"
    conn.execute(sa.text(f"drop table if exists {DIFF_TABLE}"))
    conn.execute(sa.text(f"""
        create temporary table {DIFF_TABLE} as
        with source as ({source}),
        state as (select key, row_hash, destination_id, status, sent_fields from {STATE_SCHEMA}.sync_state
                  where sync_name = :name),
        rejected as (select key, payload_hash from {STATE_SCHEMA}.rejections where sync_name = :name),
        joined as (
            select coalesce(source.key, state.key) as key, source.row_hash, source.email, source.phone,
                   source.first_name, source.last_name, source.payload{mapped}, state.destination_id, state.sent_fields,
                   case when source.key is null then 'remove'
                        when state.key is null or state.status = '{DEPARTED}' then 'add' else 'update' end as op,
                   state.row_hash as state_hash, state.status, state.key is not null as has_state
            from source
            full outer join state on state.key = source.key
        ),
        changes as (
            select joined.*
            from joined
            left join rejected  -- a remove's row_hash is null: it matches no rejection
                on rejected.key = joined.key and rejected.payload_hash = joined.row_hash
            where (joined.op = 'remove' and joined.status = 'synced')
               or (joined.op <> 'remove' and rejected.key is null
                   and (joined.op = 'add' or joined.state_hash <> joined.row_hash or joined.status <> 'synced'))
        )
        select key, row_hash, email, phone, first_name, last_name, payload, destination_id, op, sent_fields{mapped_out},
               has_state, {seq} as seq
        from changes{"" if duckdb else f" order by {PAGE_ORDER}"}
    """), params)
    if duckdb:
        # DuckDB reads a table made in the open transaction from that transaction's local storage:
        # the counts below took 0.15-0.17 s of a 1M diff so, 0.04 s once it is committed (the seq
        # update 0.03 -> 0.01 s). Nothing else of the run is uncommitted here (the lock and the
        # backfill commit their own writes; run_sync committed the diff before its first page anyway),
        # and the diff is a temporary table: the commit writes nothing to the database file.
        conn.commit()
    # Per op: its rows and, on DuckDB, how many of them may repeat a key (the source holds a key
    # twice: both rows join the same state row, so they have the same op). Counted by the keys'
    # 64-bit hashes (0.12 instead of 0.2 s of CPU at 1M): distinct hashes are distinct keys, and a
    # collision only sends the sync down the upsert path (engine.commit_page), which is right either
    # way. PostgreSQL's sync_state has a primary key, which refuses a second row itself.
    repeating = "count(*) - count(distinct hash(key))" if duckdb else "0"
    counted = conn.execute(sa.text(f"select op, count(*), {repeating} from {DIFF_TABLE} group by op")).fetchall()
    counts = {op: n for op, n, _ in counted}
    duplicates = sum(repeated for op, _, repeated in counted if op != "remove")
    if duckdb:
        _number_by_position(conn, mixed="remove" in counts and len(counts) > 1)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"create index on {DIFF_TABLE} (seq)"))
        conn.execute(sa.text(f"analyze {DIFF_TABLE}"))
    current = conn.execute(sa.text(f"select count(*) from {STATE_SCHEMA}.sync_state where sync_name = :n and status = 'synced'"),
                           {"n": sync.name}).scalar()
    skipped = conn.execute(sa.text(f"""
        with source as ({source})
        select count(*) from source join {STATE_SCHEMA}.rejections r
          on r.sync_name = :name and r.key = source.key and r.payload_hash = source.row_hash"""), params).scalar()
    return Plan(adds=counts.get("add", 0), updates=counts.get("update", 0), removes=counts.get("remove", 0),
                skipped_rejected=skipped, current=current, duplicate_keys=duplicates)


def _number_by_position(conn: sa.Connection, mixed: bool) -> None:
    """DuckDB: seq 1..N by rowid, the order the rows were written in. `mixed` (removes and other
    rows): then renumbered with the removes after the others, each group in that order (a sort of
    two narrow columns, not of the rows)."""
    conn.execute(sa.text(f"update {DIFF_TABLE} set seq = rowid - (select min(rowid) from {DIFF_TABLE}) + 1"))
    if mixed:
        conn.execute(sa.text(f"""
            update {DIFF_TABLE} set seq = numbered.seq
            from (select seq as written, row_number() over (order by op = 'remove', seq) as seq from {DIFF_TABLE}) numbered
            where {DIFF_TABLE}.seq = numbered.written"""))


def _page_selects(conn: sa.Connection, op_filter: tuple[str, ...], page_size: int,
                  columns: tuple[str, ...]) -> tuple[str, list[str]]:
    """The statement of an empty page (it shows the columns' types) and each page's statement: the
    diff rows of the given ops in a seq range (no page when the diff has none of them)."""
    ops = ", ".join(f"'{op}'" for op in op_filter)
    select = f"select {', '.join(columns)} from {DIFF_TABLE} where seq between {{lo:d}} and {{hi:d}} and op in ({ops})"
    bounds = conn.execute(sa.text(f"select min(seq), max(seq) from {DIFF_TABLE} where op in ({ops})")).fetchone()
    if bounds is None or bounds[0] is None:
        return select.format(lo=1, hi=0), []
    first, last = int(bounds[0]), int(bounds[1])
    return select.format(lo=1, hi=0), [select.format(lo=start, hi=min(start + page_size - 1, last))
                                       for start in range(first, last + 1, page_size)]


def pages(conn: sa.Connection, op_filter: tuple[str, ...], page_size: int, extra: tuple[str, ...] = ()):
    """The diff rows of the given ops (add/update, or remove), page by page in seq order (a page's
    rows in any order), with DIFF_COLUMNS and the `extra` ones (sent_fields, has_state, mapped
    field__ columns: syncs.sent_fields), as dicts. Read on the same connection (same transaction,
    same temporary table) without SQLAlchemy rows (`_page_reader`); the seq bounds are integers of
    this function's own, written into the statement."""
    columns = DIFF_COLUMNS + extra
    empty_page, statements = _page_selects(conn, op_filter, page_size, columns)
    if not statements:
        return
    read = _page_reader(conn, columns, empty_page)
    for statement in statements:
        rows = read(statement)
        if rows:
            yield rows


def arrow_pages(conn: sa.Connection, op_filter: tuple[str, ...], page_size: int, extra: tuple[str, ...] = ()):
    """`pages` as Arrow tables (DIFF_COLUMNS + `extra`), for a caller that works on columns; None
    when the diff cannot be read so (not DuckDB, or a column of another type than text or boolean):
    read `pages` then."""
    columns = DIFF_COLUMNS + extra
    empty_page, statements = _page_selects(conn, op_filter, page_size, columns)
    read = _arrow_reader(conn, empty_page)
    if read is None:
        return None
    return (table for table in map(read, statements) if table.num_rows)


_PLAIN_ARROW = ("string", "large_string", "bool", "null")  # Arrow types whose Python values equal fetchall's


def _arrow_reader(conn: sa.Connection, empty_page: str) -> Callable[[str], "pa.Table"] | None:
    """How a page statement becomes an Arrow table: DuckDB, when every column is text or boolean
    (`empty_page` shows the types); None otherwise."""
    if conn.dialect.name != "duckdb":
        return None
    raw = conn.connection.driver_connection
    if not all(str(t) in _PLAIN_ARROW for t in raw.execute(empty_page).to_arrow_table().schema.types):
        return None
    return lambda statement: raw.execute(statement).to_arrow_table()


def _page_reader(conn: sa.Connection, columns: tuple[str, ...], empty_page: str) -> Callable[[str], list[dict]]:
    """How a page statement becomes dicts. DuckDB, when every column is text or boolean (no mapped
    field__ column of another type; `empty_page` shows the types): an Arrow table whose to_pylist
    makes the dicts in C++ (a page of 10,000 rows ~25% cheaper than tuples zipped in Python; the
    values are the same str/bool/None objects). Otherwise, and on PostgreSQL, the DBAPI cursor's
    tuples zipped into dicts (DuckDB's fetchall converts decimals, dates, UUIDs its own way)."""
    arrow = _arrow_reader(conn, empty_page)
    if arrow is not None:
        def arrow_rows(statement: str) -> list[dict]:
            return arrow(statement).to_pylist()
        return arrow_rows

    def tuples(statement: str) -> list[dict]:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(statement)
            return [dict(zip(columns, row)) for row in cursor.fetchall()]
        finally:
            cursor.close()
    return tuples


def estimate(plan: Plan, per_call: int, remove_per_call: int, calls_per_second: float, calls_per_add_batch: int = 3) -> None:
    add_batches = math.ceil((plan.adds + plan.updates) / per_call) if plan.adds + plan.updates else 0
    removing = plan.removes + plan.strangers
    remove_batches = math.ceil(removing / remove_per_call) if removing else 0
    plan.batches = add_batches + remove_batches
    plan.api_calls = add_batches * calls_per_add_batch + remove_batches + 1
    plan.seconds_at_limits = round(plan.api_calls / calls_per_second, 1)
