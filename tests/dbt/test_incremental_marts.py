"""profiles and lifecycle_stage_history recompute only the profiles whose inputs changed (or whose
stages depend on where as_of lies) and, after each run of a sequence, equal a --full-refresh build
row for row, with the fingerprints they keep (so the next run starts from the same state), on
DuckDB and PostgreSQL. The sequence over a small hand-written history:

1. a later load: dan (a visitor known by cookie and email) turns out to be ben (an identify event
   with dan's cookie and ben's user_id: dan's profile merges into ben's and vanishes), ben orders
   again, fay unsubscribes by event, gus opts out by message, hal's customer record changes name;
   ann, cat and eve get nothing new;
2. as_of moves forward 30 days: ann's and cat's only orders pass at_risk_days (a change by time
   alone), and eve (a customer record without any timestamp) starts at the new as_of; nobody's
   inputs changed;
3. as_of moves back 25 days: ann is a new customer again;
4. a var the replay reads (at_risk_days) changes: every profile is recomputed.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import table_snapshot
from dbt_results import failed_tests
from raw_batches import write_batch
from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
MINE = ["path:models/profiles/profiles.sql", "path:models/lifecycle/lifecycle_stage_history.sql"]
BUILD = ["--select", *[f"+{model}" for model in MINE], "--exclude-resource-type", "test"]
COMPARED = ["profiles", "lifecycle_stage_history", "intermediate.profiles__inputs",
            "intermediate.lifecycle_stage_history__inputs", "intermediate.profiles__inputs_state",
            "intermediate.lifecycle_stage_history__inputs_state"]
RUN_STAMPS = {"changed_at"}  # lifecycle_stage_history: the start of the run that wrote the row

EVENT_HEADER = ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "email", "phone", "session_id",
                "product_id", "cart_id", "order_id", "value", "properties"]
CUSTOMER_HEADER = ["customer_id", "email", "phone", "first_name", "last_name", "created_at", "country", "postal_code",
                   "email_consent", "sms_consent", "updated_at"]
ORDER_HEADER = ["order_id", "ordered_at", "customer_id", "email", "phone", "anonymous_id", "status", "total", "currency"]
MESSAGE_HEADER = ["message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id"]


def customer(cid: str, created: str, updated: str = "", last_name: str = "X") -> list[str]:
    name = cid.removeprefix("u-")
    return [cid, f"{name}@example.com", "", name.title(), last_name, created, "US", "", "subscribed", "", updated]


def event(eid: str, kind: str, at: str, cookie: str = "", user: str = "", email: str = "") -> list[str]:
    return [eid, kind, at, cookie, user, email, "", "", "", "", "", "", ""]


def order(oid: str, at: str, cid: str, total: str) -> list[str]:
    return [oid, at, cid, f"{cid.removeprefix('u-')}@example.com", "", "", "", total, "usd"]


FIRST = {
    "customers": (CUSTOMER_HEADER, [
        customer("u-ann", "2026-08-01T09:00:00Z"),
        customer("u-ben", "2026-03-01T09:00:00Z"),
        customer("u-cat", "2026-08-03T09:00:00Z"),
        customer("u-eve", ""),  # no timestamp at all: known "as of" each run
        customer("u-fay", "2026-07-01T09:00:00Z"),
        customer("u-gus", "2026-07-02T09:00:00Z"),
        customer("u-hal", "2026-07-03T09:00:00Z", "2026-07-03T09:00:00Z", "Old"),
    ]),
    "orders": (ORDER_HEADER, [
        order("o1", "2026-08-15T10:00:00Z", "u-ann", "20"),   # 78 days before AS_OF, 108 days before AS_OF + 30
        order("o2", "2026-03-10T10:00:00Z", "u-ben", "30"),
        order("o3", "2026-04-10T10:00:00Z", "u-ben", "35"),
        order("o4", "2026-09-01T10:00:00Z", "u-cat", "12"),
    ]),
    "events": (EVENT_HEADER, [
        event("e1", "identify", "2026-08-01T09:00:00Z", "cookie-ann", "u-ann"),
        event("e2", "page_view", "2026-09-05T10:00:00Z", "cookie-dan"),
        event("e3", "identify", "2026-09-05T10:01:00Z", "cookie-dan", email="dan@example.com"),
        event("e4", "subscribe", "2026-07-01T09:00:00Z", user="u-fay"),
    ]),
    "message_events": (MESSAGE_HEADER, [
        ["m1", "email", "sent", "2026-10-01T10:00:00Z", "gus@example.com", "welcome", ""],
    ]),
}
LATER = {
    "customers": (CUSTOMER_HEADER, [customer("u-hal", "2026-07-03T09:00:00Z", "2026-10-20T09:00:00Z", "New")]),
    "orders": (ORDER_HEADER, [order("o5", "2026-10-28T10:00:00Z", "u-ben", "40")]),
    "events": (EVENT_HEADER, [
        event("e5", "identify", "2026-10-28T10:00:00Z", "cookie-dan", "u-ben"),
        event("e6", "unsubscribe", "2026-10-29T10:00:00Z", user="u-fay"),
    ]),
    "message_events": (MESSAGE_HEADER, [
        ["m1", "email", "unsubscribed", "2026-10-30T10:00:00Z", "gus@example.com", "welcome", ""],
    ]),
}


def build(warehouse: Warehouse, args: list[str], as_of: datetime, extra_vars: dict | None = None) -> dict[str, str]:
    """One dbt build; the scope line each per-profile model logged."""
    output = run_dbt(warehouse, "build", args, as_of=as_of, extra_vars=extra_vars).output
    return {m.group(1): m.group(2) for m in re.finditer(r"(profiles|lifecycle_stage_history) \(incremental\): (.*)", output)}


def by_user(warehouse: Warehouse) -> dict[str, tuple]:
    """profiles by user_id: (email_consent, orders_count, last_name, lifecycle_stage)."""
    rows = table_snapshot.snapshot(warehouse, [
        "(select user_id, email_consent, orders_count, last_name, lifecycle_stage from profiles) as p"])
    return {row[0]: row[1:] for row in next(iter(rows.values()))}


def assert_equals_full_refresh(warehouse: Warehouse, as_of: datetime, extra_vars: dict | None = None) -> None:
    table_snapshot.assert_same_as_full_refresh(warehouse, COMPARED, lambda: build(
        warehouse, ["--select", *MINE, "--full-refresh", "--exclude-resource-type", "test"], as_of, extra_vars), RUN_STAMPS)


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("incremental_marts")
    return {"first": write_batch(root / "first", FIRST), "later": write_batch(root / "later", LATER)}


def test_per_profile_marts_equal_a_full_refresh_after_each_run(any_warehouse, batches):
    load(any_warehouse, batches["first"], replace=True)
    build(any_warehouse, [*BUILD, "--full-refresh"], AS_OF)
    before = by_user(any_warehouse)
    assert before["u-ann"][3] == "new_customer" and before["u-fay"][0] == "True", before
    assert "" in before  # dan: no user_id

    # 1. New data: ben (with dan merged in), fay, gus, hal change; ann, cat, eve do not.
    load(any_warehouse, batches["later"], replace=False)
    lines = build(any_warehouse, BUILD, AS_OF)
    assert lines["profiles"] == "recomputing 5 profiles (changed inputs)", lines  # ben, dan, fay, gus, hal
    assert lines["lifecycle_stage_history"] == "recomputing 2 profiles (changed inputs)", lines  # ben, dan
    after = by_user(any_warehouse)
    assert after["u-fay"][0] == "False" and after["u-gus"][0] == "False" and after["u-hal"][2] == "New", after
    assert after["u-ben"][1] == "3" and "" not in after and len(after) == len(before) - 1, after  # dan's row is gone
    assert_equals_full_refresh(any_warehouse, AS_OF)

    # 2. Time alone: ann and cat pass at_risk_days, eve starts at the new as_of. lifecycle_stage_history
    # as an earlier release built it (no changed_at) gains the column: only the replayed rows are stamped.
    table_snapshot.execute(any_warehouse, "alter table lifecycle_stage_history drop column changed_at")
    later = AS_OF + timedelta(days=30)
    lines = build(any_warehouse, BUILD, later)
    assert lines["lifecycle_stage_history"].startswith("recomputing 3 profiles"), lines  # ann, cat, eve
    assert table_snapshot.rows(any_warehouse, "select count(distinct profile_id) from lifecycle_stage_history "
                                              "where changed_at is not null") == [(3,)]
    assert lines["profiles"] == "recomputing 2 profiles (changed inputs)", lines  # ann, cat: their stage
    assert by_user(any_warehouse)["u-ann"][3] == "at_risk"
    assert_equals_full_refresh(any_warehouse, later)

    # 3. as_of moves back: ann is a new customer again.
    back = later - timedelta(days=25)
    build(any_warehouse, BUILD, back)
    assert by_user(any_warehouse)["u-ann"][3] == "new_customer"
    assert_equals_full_refresh(any_warehouse, back)

    # 4. A var of the replay changes: every profile is replayed.
    shorter = {"at_risk_days": 60}
    lines = build(any_warehouse, ["--select", *MINE, "--exclude-resource-type", "test"], back, shorter)
    assert "recomputing every profile" in lines["lifecycle_stage_history"], lines
    assert by_user(any_warehouse)["u-ann"][3] == "at_risk"
    assert_equals_full_refresh(any_warehouse, back, shorter)

    # The build's key test reads only the rows it wrote (changed_at at or after its start): a copy
    # of an older current interval is not read, two copies stamped as written by the build are caught; a `dbt test`
    # on its own reads every row and finds both.
    history = "lifecycle_stage_history"
    copy = (f"insert into {history} (profile_id, stage, valid_from, valid_to, changed_at) "
            f"select profile_id, stage, valid_from, valid_to, {{stamp}} from {history} where valid_to is null "
            f"and profile_id = (select {{pick}}(profile_id) from {history}) and changed_at < cast('2100-01-01' as timestamp)")
    stamped = copy.format(stamp="cast('2100-01-01' as timestamp)", pick="max")
    table_snapshot.execute(any_warehouse, copy.format(stamp="changed_at", pick="min"), stamped, stamped)
    key_test, name = ["--select", f"{history},test_name:unique_columns"], "unique_columns_lifecycle_stage_history_profile_id__valid_from"
    assert failed_tests(run_dbt(any_warehouse, "build", key_test, as_of=back, extra_vars=shorter, check=False)) == {name: 1}
    assert failed_tests(run_dbt(any_warehouse, "test", key_test, as_of=back, extra_vars=shorter, check=False)) == {name: 2}
