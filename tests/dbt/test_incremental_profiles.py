"""Incremental profile models after an incremental run equal a --full-refresh build row for row,
on DuckDB and PostgreSQL, over a small hand-written history whose second batch changes profiles:

- dan (a visitor known by cookie and email) turns out to be ben: an identify event carries dan's
  cookie with ben's user_id, so dan's profile merges into ben's (the older profile survives) and
  dan's email messages now belong to ben's profile;
- ann opens two old emails late, at 09:00 (her only open so far was at 18:00): her last open does
  not move but her best send hour does;
- cat gets nothing new (her rows must stay as they are).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import table_snapshot
from raw_batches import write_batch
from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
MODELS = ["+int_profile_engagement", "int_record_profiles"]
# Stored records that lost their profile stay as tombstones (profile_id null) by design.
RECORD_PROFILES = "(select * from intermediate.int_record_profiles where profile_id is not null) as record_profiles"
COMPARED = ["intermediate.int_profile_engagement", RECORD_PROFILES]
RUN_STAMPS = {"changed_at"}
BUILD = ["--select", *MODELS, "--exclude-resource-type", "test"]

EVENT_HEADER = ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "email", "phone", "session_id",
                "product_id", "cart_id", "order_id", "value", "properties"]
MESSAGE_HEADER = ["message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id"]
CUSTOMER_HEADER = ["customer_id", "email", "phone", "first_name", "last_name", "created_at", "country", "postal_code",
                   "email_consent", "sms_consent", "updated_at"]

FIRST = {
    "customers": (CUSTOMER_HEADER, [
        ["u-ann", "ann@example.com", "", "Ann", "A", "2026-08-01T09:00:00Z", "US", "", "subscribed", "", "2026-08-01T09:00:00Z"],
        ["u-ben", "ben@example.com", "", "Ben", "B", "2026-08-02T09:00:00Z", "US", "", "subscribed", "", "2026-08-02T09:00:00Z"],
        ["u-cat", "cat@example.com", "", "Cat", "C", "2026-08-03T09:00:00Z", "US", "", "subscribed", "", "2026-08-03T09:00:00Z"],
    ]),
    "events": (EVENT_HEADER, [
        ["e1", "identify", "2026-08-01T09:00:00Z", "cookie-ann", "u-ann", "", "", "s1", "", "", "", "", ""],
        ["e2", "page_view", "2026-09-05T10:00:00Z", "cookie-dan", "", "", "", "s2", "", "", "", "", ""],
        ["e3", "identify", "2026-09-05T10:01:00Z", "cookie-dan", "", "dan@example.com", "", "s2", "", "", "", "", ""],
    ]),
    "message_events": (MESSAGE_HEADER, [
        ["m1", "email", "sent", "2026-10-01T10:00:00Z", "ann@example.com", "welcome", ""],
        ["m1", "email", "opened", "2026-10-01T18:00:00Z", "ann@example.com", "welcome", ""],
        ["m2", "email", "sent", "2026-10-02T10:00:00Z", "ben@example.com", "welcome", ""],
        ["m3", "email", "sent", "2026-10-09T10:00:00Z", "ben@example.com", "welcome", ""],
        ["m3", "email", "opened", "2026-10-09T11:00:00Z", "ben@example.com", "welcome", ""],
        ["m4", "email", "sent", "2026-10-03T10:00:00Z", "cat@example.com", "welcome", ""],
        ["m5", "email", "sent", "2026-10-04T10:00:00Z", "dan@example.com", "browse", ""],
        ["m6", "email", "sent", "2026-10-20T10:00:00Z", "dan@example.com", "browse", ""],
        ["m6", "email", "opened", "2026-10-20T12:00:00Z", "dan@example.com", "browse", ""],
        ["m6", "email", "clicked", "2026-10-20T12:01:00Z", "dan@example.com", "browse", ""],
    ]),
}
LATER = {
    "events": (EVENT_HEADER, [
        ["e4", "identify", "2026-10-28T10:00:00Z", "cookie-dan", "u-ben", "", "", "s3", "", "", "", "", ""],
    ]),
    "message_events": (MESSAGE_HEADER, [
        ["m7", "email", "opened", "2026-09-20T09:00:00Z", "ann@example.com", "welcome", ""],
        ["m8", "email", "opened", "2026-09-21T09:30:00Z", "ann@example.com", "welcome", ""],
        ["m9", "email", "sent", "2026-10-29T10:00:00Z", "ben@example.com", "welcome", ""],
    ]),
}


def engagement(warehouse: Warehouse) -> dict[str, tuple]:
    """int_profile_engagement by the email of the profile (identity_map), without the fingerprint."""
    rows = table_snapshot.snapshot(warehouse, [
        "(select m.identifier_value as email, e.last_sent_at, e.last_opened_at, e.last_clicked_at, e.emails_sent,"
        " e.sends_since_last_engagement, e.best_send_hour from intermediate.int_profile_engagement e"
        " join identity_map m on m.profile_id = e.profile_id and m.identifier_type = 'email') as engagement"])
    return {row[0]: row[1:] for row in next(iter(rows.values()))}


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("incremental_profiles")
    return {"first": write_batch(root / "first", FIRST), "later": write_batch(root / "later", LATER)}


def test_profile_changes_after_an_incremental_run_equal_a_full_refresh(any_warehouse, batches):
    load(any_warehouse, batches["first"], replace=True)
    run_dbt(any_warehouse, "build", [*BUILD, "--full-refresh"], as_of=AS_OF)
    before = engagement(any_warehouse)
    assert before["ann@example.com"][-1] == "18" and before["dan@example.com"][3] == "2"

    load(any_warehouse, batches["later"], replace=False)
    run_dbt(any_warehouse, "build", BUILD, as_of=AS_OF)
    incremental = table_snapshot.snapshot(any_warehouse, COMPARED, RUN_STAMPS)
    after = engagement(any_warehouse)
    # dan's profile merged into ben's: one row left for both emails, with dan's messages.
    assert after["dan@example.com"] == after["ben@example.com"]
    assert after["ben@example.com"][3] == "5", after  # m2, m3, m5, m6, m9 sent
    assert after["ben@example.com"][4] == "1", after  # m9 after dan's click on 10-20
    assert len(incremental["intermediate.int_profile_engagement"]) == 3
    # ann: late opens move only her best send hour; cat: unchanged.
    assert after["ann@example.com"][:-1] == before["ann@example.com"][:-1] and after["ann@example.com"][-1] == "9"
    assert after["cat@example.com"] == before["cat@example.com"]
    # dan's records (his cookie and email) now resolve to ben's profile.
    records = incremental[RECORD_PROFILES]
    dans = {row[-1] for row in records if "cookie-dan" in row or "dan@example.com" in row}
    assert dans == {row[-1] for row in records if "u-ben" in row}, records

    run_dbt(any_warehouse, "build", [*BUILD, "--full-refresh"], as_of=AS_OF)
    full = table_snapshot.snapshot(any_warehouse, COMPARED, RUN_STAMPS)
    for relation in COMPARED:
        assert incremental[relation] == full[relation], f"{relation} differs after an incremental run"
