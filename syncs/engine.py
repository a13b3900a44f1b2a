"""Runs syncs: lock -> diff in the warehouse (mirror: plus the destination's strangers) -> safety check -> batches within the destination's
limits -> send -> per-row results -> state committed for acknowledged rows only -> run record.

A crash at any point is safe: rows are marked synced only after the destination acknowledged
them, and list membership and profile imports are idempotent, so a rerun re-sends at most the
unacknowledged batch and converges to exactly the audience.
"""
from __future__ import annotations

import atexit
import gc
import logging
import re
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import sqlalchemy as sa
from tqdm import tqdm

from syncs.config import MissingSecret, SyncConfig, environment, load_syncs
from syncs.destinations.base import Acknowledged, ColumnPage, DestinationError, Page, parse_payload, payload_fields
from syncs.destinations.registry import UnsupportedDestination, limits, open_client
from syncs.mirror import add_strangers, stage_members
from syncs.modes import UnsupportedMode, check_mode
from syncs.plan import Plan, SourceMissing, arrow_pages, build_diff, check_source, estimate, pages, source_sql
from syncs.sent_fields import backfill, encode, mapped_columns, shaped
from syncs.state import (SyncLocked, acquire_lock, drop_staged, ensure_state, has_rejections, mark_departed, mark_removed,
                         mark_synced, now, record_rejections, record_run, release_lock)
from syncs.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    name: str
    status: str  # success | failed | blocked | dry_run
    adds: int = 0
    updates: int = 0
    removes: int = 0       # includes strangers (mirror)
    strangers: int = 0
    rejections: int = 0
    retries: int = 0
    duration_s: float = 0.0
    message: str = ""
    plan: Plan = field(default_factory=Plan)


# DuckDB's buffer for the diff; it spills beyond (LIFELINE_SYNC_MEMORY_LIMIT). A 10M-member sync peaked
# at 784-805 MB of RSS with 384MB, 922-938 MB with 512MB, in the same time (74-75 s); 1M runs alike.
SYNC_MEMORY_LIMIT = "384MB"


def limit_memory(conn, env: Mapping[str, str]) -> None:
    """A sync needs little memory: cap DuckDB (default 80% of RAM) so a 10M-row diff spills instead
    of growing the process. PostgreSQL does its work in its own server process."""
    if conn.dialect.name != "duckdb":
        return
    value = env.get("LIFELINE_SYNC_MEMORY_LIMIT") or SYNC_MEMORY_LIMIT
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip(), re.IGNORECASE):
        raise ValueError(f"LIFELINE_SYNC_MEMORY_LIMIT={value!r} is not a size such as 512MB or 2GB")
    conn.exec_driver_sql(f"set memory_limit = '{value.strip()}'")


def safety_problem(sync: SyncConfig, plan: Plan) -> str | None:
    """Removals above max_remove_share of the members (mirror: strangers count, and the members are
    what the destination holds if that is more than Lifeline's state), or additions above
    max_add_multiple times them. Upsert removes nothing, so only the additions are checked."""
    removing = plan.removes + plan.strangers
    base = max(plan.current, plan.destination_members or 0)
    if base and removing > sync.safety.max_remove_share * base:
        strangers = f", {plan.strangers} of them not added by Lifeline" if plan.strangers else ""
        return (f"safety limit: would remove {removing} of {base} members{strangers} "
                f"({removing / base:.0%} > {sync.safety.max_remove_share:.0%}); "
                f"check the audience, then rerun with --force if it is right")
    if plan.current and plan.adds > sync.safety.max_add_multiple * plan.current:
        return (f"safety limit: would add {plan.adds} to {plan.current} members "
                f"(more than {sync.safety.max_add_multiple:g}x); rerun with --force if it is right")
    return None


def plan_message(sync: SyncConfig, plan: Plan) -> str:
    notes = []
    if plan.strangers:
        notes.append(f"{plan.strangers} of the removals are members Lifeline did not add (mirror)")
    if plan.released:
        notes.append(f"{plan.released} rows left the model: kept at the destination (upsert)")
    return "; ".join(notes + [f"{plan.batches} batches, {plan.api_calls} API calls, "
                              f"~{plan.seconds_at_limits}s at the documented rate limits"])


def _sent(send: Callable[[list[dict]], list], batches: Iterable[list[dict]], in_flight: int):
    """(batch, send(batch)) in the batches' order. With in_flight > 1, up to that many sends run at
    once in threads while the next pages are read; the caller still commits a batch's state only
    after its own results arrived, so a failure or a crash loses no acknowledgement it recorded."""
    if in_flight <= 1:
        yield from ((batch, send(batch)) for batch in batches)
        return
    pool = ThreadPoolExecutor(in_flight, thread_name_prefix="sync-send")
    pending: deque = deque()
    try:
        for batch in batches:
            pending.append((batch, pool.submit(send, batch)))
            if len(pending) >= in_flight:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# DuckDB's WAL size that triggers a checkpoint while the pages are sent (its default: 16MB). A
# 10,000-row page's state writes are ~1 MB of WAL, so the default checkpointed every ~16 pages, each
# checkpoint 120-500 ms of the committing thread during which the destination's queue ran dry (a 1M
# initial Klaviyo sync: the sandbox idle 1.1-1.2 s in 6-10 gaps). Raised, the state of 1M rows is
# checkpointed once, at the first commit after the send (the run record's), when the threshold is
# back; beyond DuckDB's memory limit the data not yet checkpointed is evicted to its temporary
# directory like any other buffer.
SEND_CHECKPOINT_THRESHOLD = "1GiB"


@contextmanager
def send_settings(conn) -> Iterator[None]:
    """DuckDB settings while the pages are sent, restored after (after a failure too):
    - one thread: each page's reads and state writes are 10,000 rows, where DuckDB's parallelism
      only adds overhead (mark_synced took a third less CPU and wall time single-threaded), and the
      cores are left to the requests in flight; the diff, built before, keeps every thread;
    - checkpoints rare (SEND_CHECKPOINT_THRESHOLD): a checkpoint holds up the next page.
    PostgreSQL: nothing to do."""
    if conn.dialect.name != "duckdb":
        yield
        return
    wanted = {"threads": "1", "checkpoint_threshold": SEND_CHECKPOINT_THRESHOLD}
    before = {name: conn.exec_driver_sql(f"select current_setting('{name}')").scalar() for name in wanted}
    _apply(conn, wanted)
    try:
        yield
    except BaseException:
        # A failed DuckDB statement aborts the transaction, which then refuses every statement,
        # SET included: roll back first (run_sync rolls back anyway; committed pages stay), and
        # let nothing hide the error that stopped the sync.
        conn.rollback()
        with suppress(sa.exc.DBAPIError):
            _apply(conn, before)
        raise
    _apply(conn, before)


def _apply(conn, settings: dict[str, object]) -> None:
    for name, value in settings.items():
        conn.exec_driver_sql(f"set {name} = '{value}'")


SHAPES_KEPT = 1_024  # encoded field lists with_sent_fields keeps (payloads of a model share a few key sets)


SEND_GC_THRESHOLD = 50_000  # allocations between young-generation collections while sending (Python: 700)


@contextmanager
def rare_collections(threshold: int = SEND_GC_THRESHOLD) -> Iterator[None]:
    """Python's cyclic garbage collector run rarely while the pages are sent, then its thresholds
    restored. A 10,000-row page allocates tens of thousands of short-lived dicts and tuples (rows,
    profiles, results), all freed by reference counting; at the default threshold of 700 the
    collections they trigger, each older one scanning every live object, took a quarter of the
    client's CPU per page. The setting is the process's: a concurrent run_sync in another thread
    sees it too (and two that overlap may leave it raised, which only delays collections)."""
    previous = gc.get_threshold()
    gc.set_threshold(threshold, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def no_collections_at_exit() -> None:
    """For a process that runs syncs and then exits (`lifeline sync`): at exit, before the
    interpreter's final garbage collections, every object is moved to the collector's permanent
    generation (gc.freeze), so those collections scan nothing. They scanned every object the
    process still held (~110,000 after a Klaviyo sync, with DuckDB, pyarrow and pandas loaded):
    ~0.15-0.2 s of CPU after the sync was done, its last serial step. Objects are still freed by
    reference counting as the modules are torn down; those in reference cycles are left to the
    OS, which takes back the whole process anyway (run_sync closes the warehouse itself, so
    DuckDB's checkpoint on close does not wait for them). Registered once however often called."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def _carried(payloads: list[dict | None], encoded: dict[tuple[str, ...], str]) -> list[str]:
    """Each row's sent_fields from its parsed payload: what sent_fields.carried gives without a
    `fields:` mapping, the encoded list made once per set of payload keys (kept in `encoded`)."""
    texts = []
    for fields in payloads:
        names = tuple(fields or ())
        text = encoded.get(names)
        if text is None:
            if len(encoded) >= SHAPES_KEPT:
                encoded.clear()
            text = encoded[names] = encode(names)  # = sent_fields.carried(row, None)
        texts.append(text)
    return texts


def with_sent_fields(batches: Iterable[list[dict]]) -> Iterator[list[dict]]:
    """Each page with `sent_fields` set to the fields the row carries now: what sent_fields.shaped
    gives when there is no `fields:` mapping and nothing to clear (every mode but upsert), without
    copying every row. Yields Pages: the rows with their parsed payloads (base.Page), which the
    client reads instead of parsing each payload again."""
    encoded: dict[tuple[str, ...], str] = {}
    for batch in batches:
        payloads = [payload_fields(row) for row in batch]
        for row, text in zip(batch, _carried(payloads, encoded)):
            row["sent_fields"] = text
        yield Page(batch, payloads)  # the parsed payloads travel with the page, for the client


def column_pages(tables: Iterable) -> Iterator[ColumnPage]:
    """with_sent_fields for pages read as Arrow tables (plan.arrow_pages): each a base.ColumnPage
    with its rows' parsed payloads and sent_fields, and no dict per row."""
    encoded: dict[tuple[str, ...], str] = {}
    for table in tables:
        payloads = [parse_payload(text) for text in table.column("payload").to_pylist()]
        yield ColumnPage(table, payloads, _carried(payloads, encoded))


def acknowledged_whole(page: ColumnPage) -> tuple:
    """sort_page of a ColumnPage whose every row was acknowledged without a destination id: its
    state rows (key, row_hash, destination_id null, sent_fields) as Arrow tables, with a state row
    (`ok`) and without (`new`), no rejection, and how many are adds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = page.table
    state = pa.table({"key": table.column("key"), "row_hash": table.column("row_hash"),
                      "destination_id": pa.nulls(table.num_rows, pa.string()),
                      "sent_fields": pa.array(page.sent_fields, pa.string())})
    has_state = table.column("has_state")
    adds = pc.sum(pc.equal(table.column("op"), "add")).as_py() or 0
    return state.filter(has_state), state.filter(pc.invert(has_state)), [], adds


def acknowledged(batch: list[dict], results: list) -> Iterator[tuple[dict, object]]:
    """(row, its RowResult): by position when the results come in the batch's order (the clients
    answer so), else by key."""
    if len(results) == len(batch) and all(r.key == row["key"] for row, r in zip(batch, results)):
        return zip(batch, results)
    by_key = {row["key"]: row for row in batch}
    return ((by_key[r.key], r) for r in results)


def sort_page(batch: list[dict] | ColumnPage, results) -> tuple[list[dict], list[dict], list[dict], int]:
    """The page's acknowledged rows with a state row (`ok`) and without (`new`), each with its
    destination_id set to what the destination said, its rejections (`bad`), and how many of the
    acknowledged rows are adds. Results of another kind than not_acknowledged that are not ok are
    rejections; a row without a result is not acknowledged. base.Acknowledged whose keys are the
    batch's, in order: every row acknowledged, none with an id, sorted without a result per row
    (a ColumnPage so: `ok` and `new` as Arrow tables, acknowledged_whole; otherwise as its rows)."""
    if isinstance(batch, ColumnPage):
        if isinstance(results, Acknowledged) and results.keys == batch.keys:
            return acknowledged_whole(batch)
        batch = batch.rows()
    ok: list[dict] = []
    new: list[dict] = []
    bad: list[dict] = []
    marked: Iterable[tuple[dict, str | None]]  # (acknowledged row, its destination id)
    if isinstance(results, Acknowledged) and results.keys == [row["key"] for row in batch]:
        marked = ((row, None) for row in batch)
    else:
        marked = []
        for row, r in acknowledged(batch, results):
            if r.ok:
                marked.append((row, r.destination_id))
            elif r.code != "not_acknowledged":
                bad.append({"key": r.key, "code": r.code, "message": r.message, "payload_hash": row["row_hash"]})
    adds = 0
    for row, destination_id in marked:
        row["destination_id"] = destination_id  # the row itself is marked (sent, so no longer read)
        (ok if row["has_state"] else new).append(row)
        adds += row["op"] == "add"
    return ok, new, bad, adds


def together(ok, new):
    """Both sets of acknowledged rows: lists of dicts, or Arrow tables (acknowledged_whole)."""
    if isinstance(ok, list):
        return ok + new
    import pyarrow as pa

    return pa.concat_tables([ok, new])


def commit_page(conn, sync_name: str, ok: list[dict], new: list[dict], bad: list[dict],
                clear_rejections: bool = True, new_unique: bool = True) -> None:
    """A page's acknowledged rows (`new`: without a state row when the diff was built) and rejections,
    committed together. `new_unique=False` when the diff holds some key twice (the source does):
    `new` rows are then upserted on DuckDB, whose sync_state has no key to refuse a second row
    (syncs.state.mark_synced). Where it has one, a `new` key that has a state row by now (in an
    earlier page) fails the plain insert: the page's transaction is rolled back (it holds only this
    page's writes) and the page marked again with every row upserted. `clear_rejections`: whether
    the sync may hold rejections of acknowledged rows (see _send)."""
    try:
        mark_synced(conn, sync_name, ok, new, clear_rejections=clear_rejections, new_unique=new_unique)
    except sa.exc.IntegrityError:
        if not new:
            raise
        conn.rollback()
        drop_staged(conn)
        mark_synced(conn, sync_name, together(ok, new), clear_rejections=clear_rejections)
    record_rejections(conn, sync_name, bad)
    conn.commit()


def _send(conn, sync: SyncConfig, client, plan: Plan, result: SyncResult, progress: bool) -> None:
    """Send the diff: add/update rows (upsert() in upsert mode, else add()), then removals (none in
    upsert mode: the rows' state is kept as 'departed' with what they carried, so that a return
    re-sends them and clears what they no longer carry). State is committed per page for the rows
    the destination acknowledged, with the fields each carried; in upsert mode a field a row carried
    before and no longer does is sent as null (syncs.sent_fields)."""
    upsert = sync.mode == "upsert"
    send, batch_size = (client.upsert, client.upsert_batch_size) if upsert else (client.add, client.add_batch_size)
    bar = tqdm(total=plan.adds + plan.updates + plan.removes + plan.strangers, desc=sync.name, unit="row",
               disable=not progress)
    conn.commit()  # the diff table: each page's transaction then holds that page's writes only (commit_page)
    # Without a `fields:` mapping and outside upsert, each row's sent_fields is made from its payload
    # (with_sent_fields), so the diff's (what it carried before) is not read: a column less to make
    # into dicts, ~1.5 ms of a 10,000-row page.
    made = not sync.fields and not upsert
    extra = ("has_state",) if made else ("sent_fields", "has_state") + mapped_columns(sync)
    # A client that builds its request from columns (Klaviyo's add) gets the pages as Arrow columns
    # (base.ColumnPage): no dict per row to read, send and mark a page acknowledged whole.
    columns = made and hasattr(client, "add_columns")
    tables = arrow_pages(conn, ("add", "update"), batch_size, extra) if columns else None
    if tables is not None:
        rows, send = column_pages(tables), client.add_columns
    else:
        diff = pages(conn, ("add", "update"), batch_size, extra)
        rows = with_sent_fields(diff) if made else shaped(diff, sync)
    # A sync without rejections (most runs) has none to clear for acknowledged rows, until a page records one.
    rejections = has_rejections(conn, sync.name)
    for batch, results in _sent(send, rows, getattr(client, "in_flight", 1)):
        ok, new, bad, adds = sort_page(batch, results)
        commit_page(conn, sync.name, ok, new, bad, rejections, new_unique=not plan.duplicate_keys)
        rejections = rejections or bool(bad)
        result.adds += adds
        result.updates += len(ok) + len(new) - adds
        result.rejections += len(bad)
        bar.update(len(batch))
    if upsert:
        for page in pages(conn, ("remove",), 10_000):
            mark_departed(conn, sync.name, [r["key"] for r in page])
            conn.commit()
    else:
        for page in pages(conn, ("remove", "stranger"), client.remove_batch_size):
            client.remove(page)
            mark_removed(conn, sync.name, [r["key"] for r in page if r["op"] == "remove"])
            conn.commit()
            result.removes += len(page)
            result.strangers += sum(r["op"] == "stranger" for r in page)
            bar.update(len(page))
    bar.close()


def _plan(conn, sync: SyncConfig, spec, client) -> Plan:
    plan = build_diff(conn, sync)
    if sync.mode == "upsert":
        plan.released, plan.removes = plan.removes, 0
    if sync.mode == "mirror":
        plan.destination_members = stage_members(conn, client.members())
        add_strangers(conn, sync, plan)
    per_call = spec.upsert_batch_size if sync.mode == "upsert" else spec.add_batch_size
    estimate(plan, per_call, getattr(spec, "remove_batch_size", per_call), spec.calls_per_second,
             getattr(spec, "calls_per_add_batch", 1))
    return plan


def record_result(conn, result: SyncResult, started_at) -> None:
    """The run's row in lifeline_state.sync_runs (every mode, dry runs included)."""
    record_run(conn, {"run_id": str(uuid.uuid4()), "sync_name": result.name, "started_at": started_at,
                      "finished_at": now(), "status": result.status, "adds": result.adds,
                      "updates": result.updates, "removes": result.removes, "rejections": result.rejections,
                      "retries": result.retries, "duration_s": result.duration_s,
                      "message": result.message[:2000]})


def run_sync(warehouse: Warehouse, sync: SyncConfig, *, dry_run: bool = False, force: bool = False,
             progress: bool = True, env: Mapping[str, str] | None = None, wait_s: float = 0.0) -> SyncResult:
    """One sync in its mode: add_remove (the destination's members follow the model), mirror (the
    same, and members Lifeline did not add are removed), upsert (profile attributes created or
    updated, never removed) or trigger (syncs.trigger). A dry run plans, sends nothing and is
    recorded in lifeline_state.sync_runs with status 'dry_run' and the planned counts."""
    if sync.mode == "trigger":
        from syncs.trigger import run_trigger  # imported here: syncs.trigger imports this module

        return run_trigger(warehouse, sync, dry_run=dry_run, force=force, progress=progress, env=env, wait_s=wait_s)
    try:
        spec = limits(sync)
        check_mode(sync, spec)
    except (UnsupportedDestination, UnsupportedMode) as exc:
        return SyncResult(sync.name, "failed", message=str(exc))
    env = environment(env)
    started = time.perf_counter()
    started_at = now()
    engine = warehouse.engine()
    result = SyncResult(sync.name, "failed")
    client = None
    with engine.connect() as conn:
        limit_memory(conn, env)
        ensure_state(conn)
        try:
            acquire_lock(conn, sync.name, wait_s=wait_s)
        except SyncLocked as exc:
            return SyncResult(sync.name, "blocked", message=str(exc))
        try:
            check_source(conn, sync, warehouse.marts_schema)
            if not dry_run:  # state from before sent_fields: learn what unchanged rows carry (sends nothing)
                backfill(conn, sync, *source_sql(sync))
            if sync.mode == "mirror":  # the plan reads the destination's members
                client = open_client(sync, env)
            plan = _plan(conn, sync, spec, client)
            result.plan = plan
            if dry_run:
                result = SyncResult(sync.name, "dry_run", plan.adds, plan.updates, plan.removes + plan.strangers,
                                    plan=plan, message=plan_message(sync, plan))
                return result
            problem = None if force else safety_problem(sync, plan)
            if problem:
                result = SyncResult(sync.name, "blocked", plan=plan, message=problem)
                return result
            if not plan.adds + plan.updates + plan.removes + plan.strangers + plan.released:
                result = SyncResult(sync.name, "success", plan=plan, message="up to date: nothing to send")
                return result
            client = client or open_client(sync, env)
            with send_settings(conn), rare_collections():
                _send(conn, sync, client, plan, result, progress)
            result.status = "success"
            result.message = "; ".join(
                ([f"{result.strangers} members Lifeline did not add were removed"] if result.strangers else [])
                + ([f"{plan.released} rows left the model and were kept at the destination"] if plan.released else []))
        except (DestinationError, MissingSecret, SourceMissing) as exc:
            result.message = str(exc)
        except Exception as exc:  # recorded in sync_runs, then re-raised for the caller
            result.message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            result.retries = client.retries[0] if client else 0
            result.duration_s = time.perf_counter() - started
            conn.rollback()
            record_result(conn, result, started_at)
            release_lock(conn, sync.name)
    engine.dispose()
    log.info("sync %s: %s +%d ~%d -%d rejected %d", sync.name, result.status, result.adds, result.updates,
             result.removes, result.rejections)
    return result


def run_syncs(warehouse: Warehouse, config_path: Path, names: list[str] | None = None, *, dry_run: bool = False,
              force: bool = False, progress: bool = True, env: Mapping[str, str] | None = None,
              wait_s: float = 0.0) -> list[SyncResult]:
    syncs = load_syncs(config_path)
    if names:
        unknown = sorted(set(names) - {s.name for s in syncs})
        if unknown:
            raise ValueError(f"no sync named {', '.join(unknown)} in {config_path} "
                             f"(have: {', '.join(s.name for s in syncs)})")
        syncs = [s for s in syncs if s.name in names]
    return [run_sync(warehouse, s, dry_run=dry_run, force=force, progress=progress, env=env, wait_s=wait_s)
            for s in syncs]


