"""Incremental event models (base_events, stg_events, message events and what reads them): a build
after new events equals a --full-refresh build row for row, on DuckDB and PostgreSQL.

The first build sees the generated data up to a cutoff. Then arrive: the later events and
message events, a late event inside the look-back window, a copy of a stored event_id with an
earlier timestamp (it must win and replace the stored copy), one with a later timestamp (it must
be dropped as duplicate_event_id), a row without event_id and one with an unparseable timestamp
(both quarantined). An event older than the look-back, or a partition window, are covered too.

Builds leave out the data tests (`dbt build --exclude-resource-type test`) except the incremental build of the first test, which also
runs the data tests as an incremental run does (the event tables' tests read only the window;
test_data_tests_of_an_incremental_run_read_the_window shows what that means). That build runs the
whole project; the other tests' incremental builds, like the reference builds, run the compared
relations and the models upstream of them."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

import table_snapshot
from dbt_results import failed_tests
from orchestration.contract import CONTRACT_MARTS
from orchestration.dbt_runner import DbtResult, run_dbt
from orchestration.load import LOAD_STAMP_COLUMN, load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
CUTOFF = "2026-10-25T00:00:00Z"
COMPARED = [*CONTRACT_MARTS, "quarantine", "staging.base_events", "staging.stg_events",
            "staging.stg_message_events", "intermediate.int_profile_events",
            "intermediate.int_profile_message_events", "intermediate.int_profile_engagement",
            "intermediate.int_consent_signals", "audiences.int_profile_last_product"]
# Builds whose data tests are not the point of the test (they cost a third of a build).
NO_TESTS = ["--exclude-resource-type", "test"]
# The compared relations and every model upstream of them. The other models (the analytics marts,
# customer_purchase_summary, int_profile_id_history and profile_merges) feed nothing compared: the
# incremental builds of the paths below leave them out (the first test's build runs the whole project).
UPSTREAM = ["--select", *(f"+{relation.split('.')[-1]}" for relation in COMPARED), *NO_TESTS]
# The reference --full-refresh build.
REFERENCE = [*UPSTREAM, "--full-refresh"]
# When a row was (re)written: differs between runs by design.
RUN_STAMPS = {"record_changed_at", "attributed_at", "staged_at", "based_at", "changed_at"}
EVENT_COLUMNS = ("event_id, event_type, occurred_at, anonymous_id, user_id, email, phone, session_id, product_id, "
                 "cart_id, order_id, value, properties")


def _copy(con: duckdb.DuckDBPyConnection, sql: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"copy ({sql}) to '{out}' (format parquet)")


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, Path]:
    """first: everything before the cutoff; later: what arrives next (with the tricky rows);
    old: one event far older than the look-back window."""
    from seeds.generate import generate

    root = tmp_path_factory.mktemp("incremental_events")
    generate(root / "all", people=400, seed=11)
    first, later, old = root / "first", root / "later", root / "old"
    con = duckdb.connect()
    events = f"read_parquet('{root / 'all' / 'events'}/*.parquet')"
    messages = f"read_parquet('{root / 'all' / 'message_events'}/*.parquet')"
    for table_dir in (root / "all").iterdir():
        if table_dir.name.startswith("_") or table_dir.name in ("events", "message_events"):
            continue
        _copy(con, f"select * from read_parquet('{table_dir}/*.parquet')", first / table_dir.name / "part-0.parquet")
    _copy(con, f"select * from {events} where coalesce(occurred_at, '') < '{CUTOFF}'", first / "events" / "part-0.parquet")
    _copy(con, f"select * from {messages} where coalesce(occurred_at, '') < '{CUTOFF}'",
          first / "message_events" / "part-0.parquet")
    _copy(con, f"select * from {messages} where coalesce(occurred_at, '') >= '{CUTOFF}'",
          later / "message_events" / "part-0.parquet")
    stored = (f"select {EVENT_COLUMNS} from {events} where occurred_at between '2026-10-23' and '{CUTOFF}' "
              f"and user_id is not null and event_id is not null order by event_id")
    _copy(con, f"""
        select {EVENT_COLUMNS} from {events} where coalesce(occurred_at, '') >= '{CUTOFF}'
        union all  -- late event inside the look-back window, from a known user
        select * replace ('late-1' as event_id, '2026-10-23T12:00:00Z' as occurred_at) from ({stored} limit 1)
        union all  -- a stored event_id again, one hour earlier: this copy wins
        select * replace (strftime(cast(occurred_at as timestamptz) - interval 1 hour, '%Y-%m-%dT%H:%M:%SZ')
                          as occurred_at, 'identify' as event_type) from ({stored} limit 1 offset 1)
        union all  -- a stored event_id again, one hour later: dropped as duplicate_event_id
        select * replace (strftime(cast(occurred_at as timestamptz) + interval 1 hour, '%Y-%m-%dT%H:%M:%SZ')
                          as occurred_at) from ({stored} limit 1 offset 2)
        union all  -- no event_id; unparseable timestamp
        select * replace (null as event_id) from ({stored} limit 1 offset 3)
        union all
        select * replace ('bad-ts-1' as event_id, 'yesterday-ish' as occurred_at) from ({stored} limit 1 offset 4)
        """, later / "events" / "part-0.parquet")
    _copy(con, f"select * replace ('old-1' as event_id, '2026-06-01T08:00:00Z' as occurred_at) from ({stored} limit 1 offset 5)",
          old / "events" / "part-0.parquet")
    con.close()
    return {"first": first, "later": later, "old": old}


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    return table_snapshot.snapshot(warehouse, COMPARED, RUN_STAMPS)


def slice_lines(result: DbtResult) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w+) \(incremental\): (.*)", result.output)}


def assert_equals_full_refresh(warehouse: Warehouse) -> dict[str, list[tuple]]:
    incremental = snapshot(warehouse)
    run_dbt(warehouse, "build", REFERENCE, as_of=AS_OF)
    full = snapshot(warehouse)
    for relation in COMPARED:
        assert incremental[relation] == full[relation], f"{relation} differs after an incremental run"
    return full


def first_built(warehouse: Warehouse, batches: dict[str, Path], templates) -> None:
    """The first batch loaded and built with --full-refresh (built once per module and warehouse kind,
    copied into `warehouse`)."""
    def prepare(template: Warehouse, _: Path) -> None:
        load(template, batches["first"], replace=True)
        run_dbt(template, "build", [*NO_TESTS, "--full-refresh"], as_of=AS_OF)

    templates.fill(warehouse, "first", prepare)


def first_and_later_built(warehouse: Warehouse, batches: dict[str, Path], templates) -> None:
    """Both batches loaded and built with --full-refresh at AS_OF (once per module, copied)."""
    def prepare(template: Warehouse, _: Path) -> None:
        load(template, batches["first"], replace=True)
        load(template, batches["later"], replace=False)
        run_dbt(template, "build", [*NO_TESTS, "--full-refresh"], as_of=AS_OF)

    templates.fill(warehouse, "first+later", prepare)


def test_incremental_after_new_events_equals_full_refresh(any_warehouse, batches, warehouse_templates):
    first_built(any_warehouse, batches, warehouse_templates)
    load(any_warehouse, batches["later"], replace=False)
    result = run_dbt(any_warehouse, "build", as_of=AS_OF)  # with the data tests, on the window
    lines = slice_lines(result)
    # Only the slice was processed: base_* the rows loaded since the last run (and the stored
    # copies of their event_ids), stg_* the base rows those rewrote.
    for model in ("base_events", "stg_events", "base_message_events", "stg_message_events"):
        assert "processing" in lines[model] and "reprocessing every row" not in lines[model], (model, lines)
    assert lines["base_events"].startswith("rows loaded after "), lines
    full = assert_equals_full_refresh(any_warehouse)
    quarantined = {(r[1], r[2]) for r in full["quarantine"] if r[0] == "events"}
    assert ("bad-ts-1", "unparseable_timestamp") in quarantined
    assert any(key.startswith("row:") and reason == "missing_event_id" for key, reason in quarantined)
    assert sum(1 for key, reason in quarantined if reason == "duplicate_event_id") >= 2
    assert any(r[0] == "late-1" for r in full["staging.stg_events"])


def test_partition_window_and_an_event_older_than_the_look_back(duck_warehouse, batches, warehouse_templates):
    first_built(duck_warehouse, batches, warehouse_templates)
    load(duck_warehouse, batches["later"], replace=False)
    window = {"partition_start": "2026-10-25", "partition_end": "2026-11-02T00:00:00Z", "event_lookback_days": 2}
    lines = slice_lines(run_dbt(duck_warehouse, "build", UPSTREAM, as_of=AS_OF, extra_vars=window))
    assert lines["base_events"].startswith("window [2026-10-23 00:00:00, 2026-11-02 00:00:00)"), lines
    # An event months older than any window: base_events reads it by its load stamp (with the
    # rows the partition run left to later), stg_events re-stages it by its based_at (no re-read).
    load(duck_warehouse, batches["old"], replace=False)
    lines = slice_lines(run_dbt(duck_warehouse, "build", UPSTREAM, as_of=AS_OF))
    assert lines["base_events"].startswith("rows loaded after "), lines
    assert "reprocessing every row" not in lines["stg_events"], lines
    full = assert_equals_full_refresh(duck_warehouse)
    assert any(r[0] == "old-1" for r in full["staging.stg_events"])


def test_as_of_moved_back_equals_full_refresh_at_that_time(duck_warehouse, batches, warehouse_templates):
    first_and_later_built(duck_warehouse, batches, warehouse_templates)
    earlier = datetime(2026, 10, 30)  # inside the look-back window of the stored events
    run_dbt(duck_warehouse, "build", UPSTREAM, as_of=earlier)
    incremental = snapshot(duck_warehouse)
    run_dbt(duck_warehouse, "build", REFERENCE, as_of=earlier)
    full = snapshot(duck_warehouse)
    for relation in COMPARED:
        assert incremental[relation] == full[relation], f"{relation} differs after as_of moved back"
    assert max(r[2] for r in full["staging.stg_events"]) <= "2026-10-30 00:00:00"


def test_raw_replaced_with_fewer_rows_equals_full_refresh(duck_warehouse, batches, warehouse_templates):
    # `lifeline load --replace` with less data: stored rows must go, events must lose profiles.
    first_and_later_built(duck_warehouse, batches, warehouse_templates)
    load(duck_warehouse, batches["first"], replace=True)
    lines = slice_lines(run_dbt(duck_warehouse, "build", UPSTREAM, as_of=AS_OF))
    assert "reprocessing every row" in lines["base_events"], lines
    full = assert_equals_full_refresh(duck_warehouse)
    assert not any(r[0] == "late-1" for r in full["staging.stg_events"])


@pytest.fixture
def staged(duck_warehouse: Warehouse, batches, warehouse_templates) -> Warehouse:
    """The first batch built (`first_built`: stg_events, stg_orders and stg_order_items among the
    rest), in this test's own DuckDB warehouse."""
    first_built(duck_warehouse, batches, warehouse_templates)
    return duck_warehouse


def test_data_tests_of_an_incremental_build_read_the_rows_it_wrote(staged):
    """On an incremental `dbt build` the key tests of stg_events and stg_orders read only the rows
    the build wrote (staged_at at or after its start); a full refresh (the nightly check), var
    data_tests_full_scan or a `dbt test` on its own read every row. So do those of stg_order_items,
    whose table an earlier release built without staged_at: its next run adds the column."""
    def add_copy(table: str, order_by: str, staged_at: str | None = None) -> None:
        stamp = f" replace (timestamp '{staged_at}' as staged_at)" if staged_at else ""
        table_snapshot.execute(staged, f"insert into staging.{table} select *{stamp} from staging.{table} order by {order_by} limit 1")

    tests = ["--select", "stg_events,test_name:unique", "stg_orders,test_name:unique",
             "stg_order_items,test_name:unique_columns"]
    stg_events, stg_orders = "unique_stg_events_event_id", "unique_stg_orders_order_id"
    order_items = "unique_columns_stg_order_items_order_id__product_id"
    # Copies of the oldest event, order and order item as an earlier run wrote them: the build's
    # scoped tests do not read them; the test without a stamp does.
    add_copy("stg_events", "occurred_at")
    add_copy("stg_orders", "ordered_at")
    table_snapshot.execute(staged, "alter table staging.stg_order_items drop column staged_at")
    run_dbt(staged, "build", [*NO_TESTS, "--select", "stg_order_items"], as_of=AS_OF)
    assert table_snapshot.rows(staged, "select count(*) from staging.stg_order_items where staged_at is not null") == [(0,)]
    add_copy("stg_order_items", "order_id, product_id")
    failed = failed_tests(run_dbt(staged, "build", tests, as_of=AS_OF, check=False))
    assert failed == {}, failed
    # Two copies of the newest event, order and item as this build wrote them (stamped at or after its
    # start; delete+insert replaced the stored rows of the key, so a duplicate of the run is among its rows): caught.
    stamped = (("stg_events", "occurred_at desc"), ("stg_orders", "ordered_at desc"), ("stg_order_items", "order_id desc, product_id desc"))
    for table, newest in stamped:
        add_copy(table, newest, staged_at="2100-01-01")
        add_copy(table, newest, staged_at="2100-01-01")
    found = lambda failed: (failed.get(stg_events), failed.get(stg_orders), failed.get(order_items))
    failed = failed_tests(run_dbt(staged, "build", tests, as_of=AS_OF, check=False))
    assert found(failed) == (1, 1, 1), failed
    # The full scan, and a `dbt test` on its own (it wrote nothing): both copies of each.
    for command, extra_vars in (("build", {"data_tests_full_scan": True}), ("test", None)):
        failed = failed_tests(run_dbt(staged, command, tests, as_of=AS_OF, extra_vars=extra_vars, check=False))
        assert found(failed) == (2, 2, 2), (command, failed)


def test_a_partition_var_that_is_not_a_timestamp_fails_clearly(staged):
    failed = run_dbt(staged, "build", ["--select", "base_events"], as_of=AS_OF,
                     extra_vars={"partition_start": "last week"}, check=False)
    assert failed.returncode != 0
    assert "dbt var partition_start=last week is not an ISO-8601 timestamp" in failed.output
    engine = staged.engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from staging.base_events")).scalar() > 0
    engine.dispose()


def _stamps(warehouse: Warehouse, table: str) -> list:
    engine = warehouse.engine()
    with engine.connect() as conn:
        stamps = [r[0] for r in conn.execute(sa.text(f"select {LOAD_STAMP_COLUMN} from raw.{table}"))]
    engine.dispose()
    return stamps


def test_load_stamps_every_event_row_and_each_load_later(any_warehouse, batches, tmp_path):
    load(any_warehouse, batches["first"], replace=True)
    first = _stamps(any_warehouse, "events")
    assert first and None not in first and len(set(first)) == 1
    assert len(set(_stamps(any_warehouse, "message_events"))) == 1
    load(any_warehouse, batches["old"], replace=False)
    both = _stamps(any_warehouse, "events")
    assert len(both) == len(first) + 1 and max(both) > max(first)
    # A stamp column in a file is the loader's own, not an extra column: this load's stamp wins.
    stamped_file = tmp_path / "stamped" / "events.csv"
    stamped_file.parent.mkdir()
    stamped_file.write_text(f"event_id,event_type,occurred_at,{LOAD_STAMP_COLUMN}\nx-1,page_view,2026-10-30T00:00:00Z,"
                            "2001-01-01 00:00:00\n")
    assert load(any_warehouse, stamped_file.parent, replace=False)["events"].extra_columns == []
    assert min(_stamps(any_warehouse, "events")) == min(first) and max(_stamps(any_warehouse, "events")) > max(both)
    engine = any_warehouse.engine()
    with engine.connect() as conn:
        orders = conn.execute(sa.text("select * from raw.orders where 1 = 0")).keys()
    engine.dispose()
    assert LOAD_STAMP_COLUMN in orders  # customers, orders and order items too (macros/incremental_orders.sql)


def test_raw_written_by_another_tool_falls_back_to_the_window(duck_warehouse, batches, warehouse_templates):
    """Rows appended without a load stamp (another tool, into a table `lifeline load` made), and a
    raw table without the stamp column at all (the user's own), are read by occurred_at window."""
    first_built(duck_warehouse, batches, warehouse_templates)
    con = duckdb.connect(str(duck_warehouse.duckdb_path))
    for table in ("events", "message_events"):
        con.execute(f"insert into raw.{table} by name select * from read_parquet('{batches['later'] / table}/*.parquet')")
    con.close()
    lines = slice_lines(run_dbt(duck_warehouse, "build", UPSTREAM, as_of=AS_OF))
    for model in ("base_events", "base_message_events"):
        assert lines[model].startswith("window [") and "reprocessing every row" not in lines[model], lines
    assert_equals_full_refresh(duck_warehouse)
    # The user's own raw tables: no stamp column; an event older than the look-back is noticed.
    con = duckdb.connect(str(duck_warehouse.duckdb_path))
    for table in ("events", "message_events"):
        con.execute(f"alter table raw.{table} drop column {LOAD_STAMP_COLUMN}")
    con.execute(f"insert into raw.events by name select * from read_parquet('{batches['old'] / 'events'}/*.parquet')")
    con.close()
    lines = slice_lines(run_dbt(duck_warehouse, "build", UPSTREAM, as_of=AS_OF))
    assert "reprocessing every row" in lines["base_events"], lines
    full = assert_equals_full_refresh(duck_warehouse)
    assert any(r[0] == "old-1" for r in full["staging.stg_events"])
    engine = duck_warehouse.engine()
    with engine.connect() as conn:  # no stamps, no mark left behind
        marks = conn.execute(sa.text("select count(*) from information_schema.tables where table_name in "
                                     "('base_events__load_mark', 'base_message_events__load_mark')")).scalar()
    engine.dispose()
    assert marks == 0


def test_a_future_timestamp_becomes_plausible_without_being_loaded_again(staged, tmp_path):
    """An event more than a day ahead of the run is quarantined as implausible_timestamp; once the
    clock has caught up, the next run re-reads it although no raw row is new (as a full refresh would)."""
    soon = datetime.now(timezone.utc) + timedelta(days=1, seconds=10)
    future = tmp_path / "future" / "events.csv"
    future.parent.mkdir()
    future.write_text(f"event_id,event_type,occurred_at\nfuture-1,page_view,{soon:%Y-%m-%dT%H:%M:%SZ}\n")
    load(staged, future.parent, replace=False)

    def drop_reason() -> str | None:
        engine = staged.engine()
        with engine.connect() as conn:
            reason = conn.execute(sa.text("select drop_reason from staging.base_events where event_id = 'future-1'")).one()[0]
        engine.dispose()
        return reason

    only_base = [*NO_TESTS, "--select", "base_events"]
    run_dbt(staged, "build", only_base, as_of=AS_OF)
    assert drop_reason() == "implausible_timestamp", "dbt took 10 s to start: the run already saw the event as plausible"
    time.sleep(max(0.0, (soon - timedelta(days=1) - datetime.now(timezone.utc)).total_seconds()) + 1)
    lines = slice_lines(run_dbt(staged, "build", only_base, as_of=AS_OF))
    assert lines["base_events"].startswith("rows loaded after ") and "processing 1 rows" in lines["base_events"], lines
    assert drop_reason() is None
