"""stg_events / stg_message_events re-stage only the base rows written since their last run (and
those as_of made usable), and int_profile_message_events resolves only the rows staged since its
last run plus the earlier unresolved ones whose recipient became known: each case equals a full
refresh, and the incremental run wrote only the rows it had to."""
from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import table_snapshot
from orchestration.dbt_runner import DbtResult, run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
MODELS = ["--exclude-resource-type", "test", "--select", "+stg_events", "+int_profile_message_events"]
COMPARED = ["staging.base_events", "staging.stg_events", "staging.base_message_events",
            "staging.stg_message_events", "intermediate.int_profile_message_events"]
RUN_STAMPS = {"based_at", "staged_at", "attributed_at"}
EVENT_HEADER = ["event_id", "event_type", "occurred_at", "user_id", "email"]
MESSAGE_HEADER = ["message_id", "channel", "event", "occurred_at", "recipient"]


def write_batch(folder: Path, events: list[list[str]] = (), messages: list[list[str]] = (),
                customers: list[list[str]] = ()) -> Path:
    folder.mkdir(parents=True)
    for name, header, rows in (("events", EVENT_HEADER, events), ("message_events", MESSAGE_HEADER, messages),
                               ("customers", ["customer_id", "email"], customers)):
        if rows:
            with (folder / f"{name}.csv").open("w", newline="") as out:
                csv.writer(out).writerows([header, *rows])
    return folder


def first_batch(folder: Path) -> Path:
    return write_batch(folder, events=[
        ["e1", "page_view", "2026-06-01T10:00:00Z", "u1", "a@x.com"],  # months older than any look-back
        ["e2", "page_view", "2026-10-30T10:00:00Z", "u2", "b@x.com"],
        ["e3", "page_view", "2026-10-31T10:00:00Z", "u1", ""],
        ["e4", "page_view", "2026-10-31T20:00:00Z", "u2", ""],
    ], messages=[
        ["m1", "email", "sent", "2026-10-30T09:00:00Z", "a@x.com"],
        ["m2", "email", "sent", "2026-10-30T09:00:00Z", "nobody@x.com"],  # no profile has this address yet
    ], customers=[["u1", "a@x.com"], ["u2", "b@x.com"]])


def build(warehouse: Warehouse, *args: str, as_of: datetime = AS_OF) -> dict[str, str]:
    """One dbt build of the event models; the slice line each incremental model logged."""
    result: DbtResult = run_dbt(warehouse, "build", [*MODELS, *args], as_of=as_of)
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w+) \(incremental\): (.*)", result.output)}


def scalar(warehouse: Warehouse, sql: str):
    engine = warehouse.engine()
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def written_by_last_run(warehouse: Warehouse, relation: str, stamp: str, key: str) -> set[str]:
    """Keys of the rows whose stamp is the newest: the rows the last run (re)wrote."""
    engine = warehouse.engine()
    with engine.connect() as conn:
        keys = {r[0] for r in conn.execute(sa.text(
            f"select {key} from {relation} where {stamp} = (select max({stamp}) from {relation})"))}
    engine.dispose()
    return keys


def assert_equals_full_refresh(warehouse: Warehouse, as_of: datetime = AS_OF) -> dict[str, list[tuple]]:
    return table_snapshot.assert_same_as_full_refresh(
        warehouse, COMPARED, lambda: build(warehouse, "--full-refresh", as_of=as_of), RUN_STAMPS)


def load_and_build_first(warehouse: Warehouse, workdir: Path) -> None:
    load(warehouse, first_batch(workdir / "first"), replace=True)
    build(warehouse, "--full-refresh")


@pytest.fixture
def built(any_warehouse: Warehouse, warehouse_templates) -> Warehouse:
    """The first batch loaded and built with --full-refresh (built once per module and warehouse kind, copied)."""
    return warehouse_templates.fill(any_warehouse, "first", load_and_build_first)


@pytest.fixture
def duck_built(duck_warehouse: Warehouse, warehouse_templates) -> Warehouse:
    """`built`, on DuckDB only: these paths run the same SQL as the sequences above, which PostgreSQL runs too
    (the suite's time budget)."""
    return warehouse_templates.fill(duck_warehouse, "first", load_and_build_first)


def test_a_late_duplicate_that_now_wins_is_restaged_alone_even_when_old(duck_built, tmp_path):
    built = duck_built
    load(built, write_batch(tmp_path / "later", events=[
        ["e1", "identify", "2026-05-01T10:00:00Z", "u1", "a@x.com"],  # earlier copy of e1: it wins
        ["e5", "page_view", "2026-10-31T12:00:00Z", "u1", ""],
    ]), replace=False)
    lines = build(built)
    assert "reprocessing every row" not in lines["stg_events"], lines
    assert written_by_last_run(built, "staging.stg_events", "staged_at", "event_id") == {"e1", "e5"}
    full = assert_equals_full_refresh(built)
    assert [r[2] for r in full["staging.stg_events"] if r[0] == "e1"] == ["2026-05-01 10:00:00"]


def test_as_of_moving_forward_stages_the_rows_it_made_usable_and_back_deletes_them(built):
    earlier = datetime(2026, 10, 31, 12)
    build(built, "--full-refresh", as_of=earlier)  # e4 (10-31 20:00) lies after as_of
    assert scalar(built, "select count(*) from staging.stg_events") == 3
    build(built)  # forward to 11-01: nothing new in base, e4 became usable
    assert written_by_last_run(built, "staging.stg_events", "staged_at", "event_id") == {"e4"}
    assert_equals_full_refresh(built)
    before = scalar(built, "select max(staged_at) from staging.stg_events")
    lines = build(built, as_of=earlier)  # back: the post-hook deletes e4, nothing is re-staged
    assert "processing 0 rows" in lines["stg_events"], lines
    assert scalar(built, "select count(*) from staging.stg_events where event_id = 'e4'") == 0
    assert scalar(built, "select max(staged_at) from staging.stg_events") == before
    assert_equals_full_refresh(built, as_of=earlier)


def test_an_unresolved_recipient_who_becomes_known_is_resolved_by_a_later_run(built, tmp_path):
    assert scalar(built, "select count(*) from intermediate.int_profile_message_events where message_id = 'm2'") == 0
    assert scalar(built, "select count(*) from intermediate.int_profile_message_events__unresolved") == 1
    # A run without anything about that address: m2 stays unresolved, nothing else is rewritten.
    load(built, write_batch(tmp_path / "unrelated", events=[["e6", "page_view", "2026-10-31T13:00:00Z", "u1", ""]]),
         replace=False)
    build(built)
    assert scalar(built, "select count(*) from intermediate.int_profile_message_events__unresolved") == 1
    # The address shows up on a new user's event: m2 gets that profile, and only m2 is written.
    load(built, write_batch(tmp_path / "known", events=[["e7", "identify", "2026-10-31T14:00:00Z", "u3", "nobody@x.com"]]),
         replace=False)
    build(built)
    assert written_by_last_run(built, "intermediate.int_profile_message_events", "attributed_at", "message_id") == {"m2"}
    assert scalar(built, "select count(*) from intermediate.int_profile_message_events__unresolved") == 0
    full = assert_equals_full_refresh(built)
    assert any(r[2] == "m2" and r[0] for r in full["intermediate.int_profile_message_events"])


def test_a_stored_event_that_loses_its_usable_row_falls_back_to_a_full_reread(duck_built, tmp_path):
    built = duck_built
    # An earlier copy of e2 with an implausible timestamp ranks first: no copy of e2 is usable any more.
    load(built, write_batch(tmp_path / "later", events=[["e2", "page_view", "1999-01-01T00:00:00Z", "u2", ""]]),
         replace=False)
    lines = build(built)
    assert "reprocessing every row" in lines["stg_events"], lines
    assert "reprocessing every row" not in lines["stg_message_events"], lines
    full = assert_equals_full_refresh(built)
    assert not any(r[0] == "e2" for r in full["staging.stg_events"])
