"""The customer and order chain (base_customers, base_orders, stg_customers, stg_orders,
stg_order_items) and quarantine after incremental runs equal a --full-refresh build row for row, on
DuckDB and PostgreSQL, over a small hand-written history:

- a later load brings a new order with its items, a new item of an old order, a corrected copy of
  an order (same id, a higher total: it wins), an order and a customer without id, a customer
  whose country changes from GB to FR, so that the phones of her orders read with +44 become +33,
  and an event that shows the guest who ordered as gus@ is Cal, whose order is not new: their
  profiles merge and the purchases are renumbered (int_profile_orders, customer_purchase_summary);
- a run with nothing new reads nothing;
- rows appended by another tool (no load stamp), and raw tables without the stamp column at all,
  are read in full;
- as_of moving back drops the orders (and customers) after it.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

import table_snapshot
from raw_batches import write_batch
from table_snapshot import execute, rows
from orchestration.dbt_runner import run_dbt
from orchestration.load import LOAD_STAMP_COLUMN, load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
MODELS = ["+stg_customers", "+stg_orders", "+stg_order_items", "+quarantine", "+customer_purchase_summary"]
BUILD = ["--select", *MODELS, "--exclude-resource-type", "test"]
COMPARED = ["staging.base_customers", "staging.base_orders", "staging.stg_customers", "staging.stg_orders",
            "staging.stg_order_items", "intermediate.int_profile_orders", "customer_purchase_summary", "quarantine"]
RUN_STAMPS = {"based_at", "staged_at", "changed_at", "attributed_at", "_lifeline_loaded_at"}
CHAIN = ("base_customers", "base_orders", "stg_customers", "stg_orders", "stg_order_items")

CUSTOMER_HEADER = ["customer_id", "email", "phone", "first_name", "created_at", "country", "updated_at"]
ORDER_HEADER = ["order_id", "ordered_at", "customer_id", "email", "phone", "status", "total", "currency"]
ITEM_HEADER = ["order_id", "product_id", "quantity", "unit_price"]
EVENT_HEADER = ["event_id", "event_type", "occurred_at", "user_id", "email"]

FIRST = {
    "customers": (CUSTOMER_HEADER, [
        ["c-ann", "ann@example.com", "(555) 010-0001", "Ann", "2026-01-01T00:00:00Z", "US", "2026-01-01T00:00:00Z"],
        ["c-bea", "bea@example.com", "07700 900001", "Bea", "2026-02-01T00:00:00Z", "GB", "2026-02-01T00:00:00Z"],
        ["c-cal", "not-an-email", "", "Cal", "2026-10-30T00:00:00Z", "US", ""],  # created 2 days before as_of
        ["", "nobody@example.com", "", "No id", "2026-03-01T00:00:00Z", "US", ""],
    ]),
    "orders": (ORDER_HEADER, [
        ["o1", "2026-03-01T10:00:00Z", "c-ann", "ann@example.com", "(555) 010-0001", "", "20", "usd"],
        ["o2", "2026-04-01T10:00:00Z", "c-bea", "bea@example.com", "07700 900001", "", "30", "gbp"],
        ["o3", "2026-05-01T10:00:00Z", "c-bea", "bea@example.com", "07700 900002", "refunded", "15", "gbp"],
        ["o4", "not a time", "c-ann", "", "", "", "5", "usd"],
        ["o5", "2026-10-31T10:00:00Z", "c-cal", "not-an-email", "", "", "12", "usd"],  # 14 hours before as_of
        ["", "2026-06-01T10:00:00Z", "c-ann", "", "", "", "1", "usd"],
        ["o8", "2026-02-15T10:00:00Z", "", "gus@example.com", "", "", "8", "usd"],  # a guest
    ]),
    "events": (EVENT_HEADER, [["e1", "page_view", "2026-10-01T10:00:00Z", "c-ann", ""]]),
    "order_items": (ITEM_HEADER, [
        ["o1", "p1", "1", "20"], ["o1", "p1", "2", "20"], ["o2", "p2", "1", "30"], ["o3", "", "1", "15"],
    ]),
}
LATER = {
    "customers": (CUSTOMER_HEADER, [
        # Bea moves to France: the phones of her orders are read with +33, not +44.
        ["c-bea", "bea@example.com", "07700 900001", "Bea", "2026-02-01T00:00:00Z", "FR", "2026-10-01T00:00:00Z"],
        ["", "another@example.com", "", "No id either", "2026-03-02T00:00:00Z", "US", ""],
    ]),
    "orders": (ORDER_HEADER, [
        ["o6", "2026-10-20T10:00:00Z", "c-ann", "ann@example.com", "", "", "40", "usd"],
        ["o1", "2026-03-01T10:00:00Z", "c-ann", "ann@example.com", "(555) 010-0001", "", "25", "usd"],  # corrected
        ["", "2026-06-02T10:00:00Z", "c-bea", "", "", "", "2", "gbp"],
    ]),
    "order_items": (ITEM_HEADER, [["o6", "p6", "1", "40"], ["o1", "p3", "1", "5"], ["", "p9", "1", "1"]]),
    "events": (EVENT_HEADER, [["e2", "identify", "2026-10-25T10:00:00Z", "c-cal", "gus@example.com"]]),
}


def build(warehouse: Warehouse, *args: str, as_of: datetime = AS_OF) -> dict[str, str]:
    """One dbt build of the chain; the slice line each incremental model logged."""
    output = run_dbt(warehouse, "build", [*BUILD, *args], as_of=as_of).output
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w+) \(incremental\): (.*)", output)}


def assert_equals_full_refresh(warehouse: Warehouse, as_of: datetime = AS_OF) -> dict[str, list[tuple]]:
    return table_snapshot.assert_same_as_full_refresh(
        warehouse, COMPARED, lambda: build(warehouse, "--full-refresh", as_of=as_of), RUN_STAMPS)


def load_and_build_first(warehouse: Warehouse, workdir: Path) -> None:
    load(warehouse, write_batch(workdir / "first", FIRST), replace=True)
    build(warehouse, "--full-refresh")


@pytest.fixture
def built(any_warehouse: Warehouse, warehouse_templates) -> Warehouse:
    """The first batch loaded and built with --full-refresh (built once per module and warehouse kind, copied)."""
    return warehouse_templates.fill(any_warehouse, "first", load_and_build_first)


@pytest.fixture
def duck_built(duck_warehouse: Warehouse, warehouse_templates) -> Warehouse:
    """`built`, on DuckDB only: moving as_of back deletes through the same post-hook SQL as stg_events, which
    tests/dbt/test_staged_slice.py runs on PostgreSQL (the suite's time budget)."""
    return warehouse_templates.fill(duck_warehouse, "first", load_and_build_first)


def test_new_and_corrected_orders_and_a_country_change_equal_a_full_refresh(built, tmp_path):
    load(built, write_batch(tmp_path / "later", LATER), replace=False)
    lines = build(built)
    for model in CHAIN:
        assert "reprocessing every row" not in lines[model], lines
    assert lines["base_orders"].endswith("processing 6 rows"), lines  # 3 new, o1's first copy, Bea's o2 and o3
    assert lines["base_customers"].endswith("processing 3 rows"), lines  # 2 new, Bea's first record
    # Only what changed was rewritten.
    assert {r[0] for r in rows(built, "select order_id from staging.stg_orders "
                                      "where staged_at = (select max(staged_at) from staging.stg_orders)")} \
        == {"o1", "o2", "o3", "o6"}
    full = assert_equals_full_refresh(built)
    phones = dict(rows(built, "select order_id, phone from staging.stg_orders"))
    assert phones["o2"] == "+337700900001" and phones["o3"] == "+337700900002" and phones["o1"] == "+15550100001"
    assert rows(built, "select total from staging.stg_orders where order_id = 'o1'") == [(25,)]
    numbers = dict(rows(built, "select order_id, purchase_number from intermediate.int_profile_orders"))
    assert (numbers["o8"], numbers["o5"], numbers["o1"], numbers["o6"]) == (1, 2, 1, 2)
    items = {(r[0], r[1]): r[2] for r in rows(built, "select order_id, product_id, quantity from staging.stg_order_items")}
    assert items == {("o1", "p1"): 3, ("o1", "p3"): 1, ("o2", "p2"): 1, ("o6", "p6"): 1}
    quarantined = {(r[0], r[1], r[2]) for r in rows(built, "select source_table, source_key, reason from quarantine")}
    assert {("orders", "o1", "duplicate_order_id"), ("orders", "o4", "unparseable_timestamp"),
            ("orders", "row:unknown", "missing_order_id"), ("customers", "row:unknown", "missing_customer_id"),
            ("customers", "c-cal", "malformed_email"), ("orders", "o5", "malformed_email"),
            ("order_items", "o3", "missing_product_id"), ("order_items", "row:unknown", "missing_order_id")} <= quarantined
    assert len([r for r in full["quarantine"] if r[:3] == ("orders", "row:unknown", "missing_order_id")]) == 2
    # A run with nothing new reads nothing and rewrites nothing.
    lines = build(built)
    for model in CHAIN:
        assert "processing 0 rows" in lines[model], lines
    assert_equals_full_refresh(built)


def test_rows_without_load_stamps_are_read_in_full(built):
    """Rows appended by another tool (no stamp), then raw tables without the stamp column at all."""
    execute(built,
            "insert into raw.orders (order_id, ordered_at, customer_id, total) values ('o7', '2026-10-21T10:00:00Z', 'c-bea', '9')",
            "insert into raw.order_items (order_id, product_id, quantity) values ('o7', 'p7', '1')",
            "insert into raw.customers (customer_id, email, country, updated_at) "
            "values ('c-ann', 'ann@example.com', 'CA', '2026-10-02T00:00:00Z')")
    lines = build(built)
    for model in ("base_customers", "base_orders"):
        assert "reprocessing every row" in lines[model] and "without a load stamp" in lines[model], lines
    assert_equals_full_refresh(built)
    execute(built, *(f"alter table raw.{table} drop column {LOAD_STAMP_COLUMN}"
                     for table in ("customers", "orders", "order_items")))
    execute(built, *(f"insert into raw.orders (order_id, ordered_at, customer_id, total) values "
                     f"('{r[0]}', '{r[1]}', '{r[2]}', '{r[6]}')" for r in LATER["orders"][1]))
    lines = build(built)
    assert "reprocessing every row" in lines["base_orders"], lines
    full = assert_equals_full_refresh(built)
    assert any(r[0] == "o6" for r in full["staging.stg_orders"])
    marks = rows(built, "select count(*) from information_schema.tables where table_name in "
                        "('base_orders__load_mark', 'base_customers__load_mark', 'stg_order_items__load_mark')")
    assert marks == [(0,)]


def test_as_of_moving_back_drops_the_orders_and_customers_after_it(duck_built):
    built = duck_built
    earlier = datetime(2026, 10, 30, 12)
    lines = build(built, as_of=earlier)
    assert "reprocessing every row" not in lines["stg_orders"], lines
    assert rows(built, "select count(*) from staging.stg_orders where order_id = 'o5'") == [(0,)]
    assert rows(built, "select count(*) from staging.stg_customers where customer_id = 'c-cal'") == [(1,)]
    assert_equals_full_refresh(built, as_of=earlier)
    even_earlier = datetime(2026, 10, 29)
    build(built, as_of=even_earlier)
    assert rows(built, "select count(*) from staging.stg_customers where customer_id = 'c-cal'") == [(0,)]
    assert_equals_full_refresh(built, as_of=even_earlier)
    lines = build(built)  # forward again: o5 and c-cal come back
    assert "reprocessing every row" not in lines["stg_orders"], lines
    assert rows(built, "select count(*) from staging.stg_orders where order_id = 'o5'") == [(1,)]
    assert_equals_full_refresh(built)
