"""Each suite on DuckDB and PostgreSQL: passes on good data, names the failing expectation (with
its severity) on bad data, and warnings never block. Tables are built with plain SQL here."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from expectations.runner import SuiteResult, available_suites, run_all, run_suite
from syncs.warehouse import Warehouse

AS_OF = datetime(2024, 6, 1, tzinfo=timezone.utc)
PARAMS = {"as_of": AS_OF}

RAW_DDL = {
    "events": "event_id varchar, event_type varchar, occurred_at varchar, email varchar, extra_col varchar",
    "customers": "customer_id varchar, email varchar, email_consent varchar, sms_consent varchar, created_at varchar",
    "orders": "order_id varchar, ordered_at varchar, status varchar, total varchar",
    "order_items": "order_id varchar, product_id varchar, quantity varchar",
    "products": "product_id varchar, name varchar",
    "message_events": "message_id varchar, channel varchar, event varchar, occurred_at varchar, recipient varchar",
}


def execute(warehouse: Warehouse, *statements: str) -> None:
    engine = warehouse.engine()
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def insert(warehouse: Warehouse, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    values = ", ".join("(" + ", ".join("null" if v is None else (str(v).lower() if isinstance(v, bool) else
                                       "'" + str(v).replace("'", "''") + "'") for v in row) + ")" for row in rows)
    execute(warehouse, f"insert into {table} values {values}")


def raw_tables(warehouse: Warehouse) -> None:
    execute(warehouse, "create schema if not exists raw",
            *[f"create table raw.{name} ({ddl})" for name, ddl in RAW_DDL.items()])
    insert(warehouse, "raw.events", [(f"e{i}", "page_view", f"2024-05-{10 + i % 9:02d}T10:00:00Z", None, "x")
                                     for i in range(200)])
    insert(warehouse, "raw.customers", [("c1", "a@x.io", "subscribed", "never_subscribed", "2024-01-01"),
                                        ("c2", None, None, "unsubscribed", None)])
    insert(warehouse, "raw.orders", [("o1", "2024-05-01 10:00:00", "completed", "10"), ("o2", "2024-05-02", None, "5")])
    insert(warehouse, "raw.order_items", [("o1", "p1", "1")])
    insert(warehouse, "raw.products", [("p1", "Tea")])
    insert(warehouse, "raw.message_events", [("m1", "email", "opened", "2024-05-03T10:00:00+02:00", "a@x.io")])


def failing(result: SuiteResult) -> dict[str, str]:
    return {o.check: o.severity for o in result.outcomes if not o.success}


def outcome(result: SuiteResult, check: str):
    return next(o for o in result.outcomes if o.check == check)


def test_raw_suites_pass_on_good_data_and_record_results(any_warehouse: Warehouse, tmp_path: Path) -> None:
    raw_tables(any_warehouse)
    names = available_suites(any_warehouse)
    assert names == [f"raw.{t}" for t in RAW_DDL]
    results = run_all(any_warehouse, params=PARAMS, results_dir=tmp_path / "dq")
    assert [(r.suite, r.success, r.warnings) for r in results] == [(n, True, []) for n in names]
    assert all(r.statistics["evaluated_expectations"] >= 2 for r in results)
    # rows were really fetched: the row-based checks saw every events row
    events = results[0]
    assert json.loads(outcome(events, "event_id_not_null").observed_value)["element_count"] == 200
    document = json.loads(events.result_path.read_text())
    assert document["suite"] == "raw.events" and document["result"]["success"] is True
    assert events.result_path.is_relative_to(tmp_path / "dq")
    secret = any_warehouse.pg.get("password")
    assert not secret or all(secret not in r.result_path.read_text() for r in results)
    engine = any_warehouse.engine()
    with engine.connect() as connection:
        stored = connection.execute(sa.text(
            "select suite, count(*), min(run_id) = max(run_id) from lifeline_state.dq_results group by suite")).all()
    engine.dispose()
    assert {s: (n, same) for s, n, same in stored} == {
        r.suite: (len(r.outcomes), True) for r in results}


def test_raw_events_bad_rows_are_counted_and_block(any_warehouse: Warehouse, tmp_path: Path) -> None:
    raw_tables(any_warehouse)
    # 200 good rows + 7 without event_id (3.4% > 1% tolerated), 5 in the far future, 2 unparseable.
    insert(any_warehouse, "raw.events", [(None, "page_view", "2024-05-10", None, None)] * 7
           + [(f"f{i}", "page_view", "2031-01-01T00:00:00Z", None, None) for i in range(5)]
           + [(f"u{i}", "page_view", "yesterday", None, None) for i in range(2)])
    result = run_suite(any_warehouse, "raw.events", params=PARAMS, results_dir=tmp_path)
    assert not result.success
    assert {o.check: o.severity for o in result.blocking_failures} == {
        "event_id_not_null": "error", "occurred_at_not_in_future": "error"}
    observed = json.loads(outcome(result, "event_id_not_null").observed_value)
    assert (observed["unexpected_count"], observed["element_count"]) == (7, 214)
    assert outcome(result, "occurred_at_not_in_future").observed_value == "1"  # the over-threshold row
    # 2 of 214 unparseable is under the 1% tolerance: passes
    assert outcome(result, "occurred_at_parseable").success


def test_raw_unknown_event_type_warns_without_blocking(any_warehouse: Warehouse, tmp_path: Path) -> None:
    raw_tables(any_warehouse)
    insert(any_warehouse, "raw.events", [("x1", "video_play", "2024-05-10", None, None)])
    result = run_suite(any_warehouse, "raw.events", params=PARAMS, results_dir=tmp_path)
    assert result.success and result.blocking_failures == []
    assert [(w.check, w.severity) for w in result.warnings] == [("event_type_accepted_values", "warn")]
    assert json.loads(result.warnings[0].observed_value)["unexpected_count"] == 1


def test_raw_contract_values_and_schema(any_warehouse: Warehouse, tmp_path: Path) -> None:
    raw_tables(any_warehouse)
    insert(any_warehouse, "raw.customers", [("c3", None, "yes", "no", None)])
    insert(any_warehouse, "raw.orders", [("o3", "2024-05-02", "shipped", "1")])
    insert(any_warehouse, "raw.message_events", [("m2", "pigeon", "opened", "2024-05-03", None)])
    execute(any_warehouse, "alter table raw.products drop column product_id")
    results = {r.suite: r for r in run_all(any_warehouse, params=PARAMS, results_dir=tmp_path,
                                           suite_names=["raw.customers", "raw.orders", "raw.message_events",
                                                        "raw.products"])}
    assert failing(results["raw.customers"]) == {"email_consent_accepted_values": "error",
                                                 "sms_consent_accepted_values": "error"}
    assert failing(results["raw.orders"]) == {"status_accepted_values": "error"}
    assert failing(results["raw.message_events"]) == {"channel_accepted_values": "error"}
    assert "required_columns_exist" in failing(results["raw.products"])
    assert not any(r.success for r in results.values())


PROFILE_DDL = ("create table profiles (profile_id varchar, email varchar, phone varchar, email_consent boolean,"
               " sms_consent boolean, orders_count integer, lifecycle_stage varchar)")


def good_profiles(warehouse: Warehouse) -> None:
    execute(warehouse, PROFILE_DDL)
    insert(warehouse, "profiles", [
        ("p1", "a@x.io", "+15550001", True, True, 2, "repeat_customer"),
        ("p2", "b@x.io", None, True, False, 0, "prospect"),
        ("p3", None, "+15550003", False, True, 1, "new_customer"),
        ("p4", None, None, False, False, 0, "visitor"),
    ])


def test_profiles_suite(any_warehouse: Warehouse, tmp_path: Path) -> None:
    good_profiles(any_warehouse)
    good = run_suite(any_warehouse, "profiles", params=PARAMS, results_dir=tmp_path)
    assert good.success and good.warnings == [], good.outcomes
    insert(any_warehouse, "profiles", [
        ("p1", None, None, True, False, -1, "zombie"),        # duplicate id, consent without email
        ("p6", None, None, False, True, 0, "visitor"),        # sms consent without phone
    ] + [(f"v{i}", None, None, False, False, 0, "visitor") for i in range(20)])  # contactable share drops
    bad = run_suite(any_warehouse, "profiles", params=PARAMS, results_dir=tmp_path)
    assert failing(bad) == {
        "profile_id_unique": "error", "email_consent_has_email": "error", "sms_consent_has_phone": "error",
        "orders_count_non_negative": "error", "lifecycle_stage_accepted_values": "error",
        "contactability_share": "warn"}
    assert outcome(bad, "email_consent_has_email").observed_value == "1"  # one offending profile_id


def test_profiles_low_contactability_only_warns(any_warehouse: Warehouse, tmp_path: Path) -> None:
    good_profiles(any_warehouse)
    result = run_suite(any_warehouse, "profiles", params={**PARAMS, "contactability_min": 0.9},
                       results_dir=tmp_path)
    assert result.success and [w.check for w in result.warnings] == ["contactability_share"]


def audience_tables(warehouse: Warehouse, members: list[tuple]) -> None:
    good_profiles(warehouse)
    execute(warehouse, "create table audience_members (audience varchar, profile_id varchar, channel varchar,"
                       " email varchar, phone varchar, is_holdout boolean, payload varchar)")
    insert(warehouse, "audience_members", members)


GOOD_MEMBERS = [
    ("welcome", "p1", "email", "a@x.io", None, False, '{"product": "Tea"}'),
    ("welcome", "p2", "email", "b@x.io", None, False, '{}'),
    ("welcome", "p4", "email", None, None, True, 'not json'),   # holdout: never synced, not checked
    ("welcome", "p3", "sms", None, "+15550003", False, None),
]


def test_audience_suite_consent_contact_payload(any_warehouse: Warehouse, tmp_path: Path) -> None:
    audience_tables(any_warehouse, GOOD_MEMBERS)
    assert available_suites(any_warehouse) == ["profiles", "audience.welcome.email", "audience.welcome.sms"]
    first = run_all(any_warehouse, params=PARAMS, results_dir=tmp_path)
    assert [(r.suite, r.success, r.warnings) for r in first] == [
        ("profiles", True, []), ("audience.welcome.email", True, []), ("audience.welcome.sms", True, [])]
    insert(any_warehouse, "audience_members", [
        ("welcome", "p3", "email", "c@x.io", None, False, '{"a": 1}'),   # p3 has no email consent
        ("welcome", "p2", "sms", None, None, False, '{broken'),          # no sms consent, no phone, bad payload
    ])
    email, sms = run_all(any_warehouse, params=PARAMS, results_dir=tmp_path,
                         suite_names=["audience.welcome.email", "audience.welcome.sms"])
    assert failing(email) == {"members_have_consent": "error"}
    assert json.loads(outcome(email, "members_have_consent").observed_value)["unexpected_count"] == 1
    assert failing(sms) == {"members_have_consent": "error", "contact_present": "error",
                            SIZE: "error", "payload_is_json": "warn"}


def test_ads_audience_suite_needs_consent_on_every_identifier_a_row_carries(any_warehouse: Warehouse,
                                                                            tmp_path: Path) -> None:
    audience_tables(any_warehouse, [
        ("welcome", "p1", "ads", "a@x.io", "+15550001", False, "{}"),  # both identifiers consented
        ("welcome", "p2", "ads", "b@x.io", None, False, "{}"),         # email only
        ("welcome", "p3", "ads", None, "+15550003", False, "{}"),      # sms consent only: phone only
    ])
    [good] = run_all(any_warehouse, params=PARAMS, results_dir=tmp_path, suite_names=["audience.welcome.ads"])
    assert good.success and failing(good) == {}
    insert(any_warehouse, "audience_members", [("welcome", "p3", "ads", "c@x.io", "+15550003", False, "{}")])
    [bad] = run_all(any_warehouse, params=PARAMS, results_dir=tmp_path, suite_names=["audience.welcome.ads"])
    assert failing(bad) == {"members_have_consent": "error"}  # p3's email has no consent


SIZE = "size_within_bounds"


def test_audience_size_against_last_accepted_size(any_warehouse: Warehouse, tmp_path: Path) -> None:
    members = [("win_back", f"p{i}", "email", f"{i}@x.io", None, False, "{}") for i in (1, 2)]
    audience_tables(any_warehouse, members)
    execute(any_warehouse, "update profiles set email = 'x@x.io', email_consent = true")
    assert run_suite(any_warehouse, "audience.win_back.email", results_dir=tmp_path).success   # first run
    insert(any_warehouse, "audience_members",
           [("win_back", "p3", "email", "3@x.io", None, False, "{}"),
            ("win_back", "p4", "email", "4@x.io", None, False, "{}")])
    grown = run_suite(any_warehouse, "audience.win_back.email", results_dir=tmp_path)      # 2 -> 4: +100%
    assert failing(grown) == {SIZE: "error"} and outcome(grown, SIZE).observed_value == "4"
    # the failed size is not accepted: the next run still compares with 2, unless within 50% of it
    execute(any_warehouse, "delete from audience_members where profile_id = 'p4'")
    assert run_suite(any_warehouse, "audience.win_back.email", results_dir=tmp_path).success  # 3 vs 2
    # an operator accepts a legitimate jump by widening the bound for one run; it becomes the baseline
    insert(any_warehouse, "audience_members", [("win_back", f"p{i}", "email", "q@x.io", None, False, "{}")
                                               for i in range(5, 10)])                         # 8 vs 3
    insert(any_warehouse, "profiles", [(f"p{i}", "q@x.io", None, True, False, 1, "at_risk") for i in range(5, 10)])
    assert failing(run_suite(any_warehouse, "audience.win_back.email", results_dir=tmp_path)) == {SIZE: "error"}
    widened = run_suite(any_warehouse, "audience.win_back.email", params={"max_size_change": 2.0},
                        results_dir=tmp_path)
    assert failing(widened) == {}
    assert failing(run_suite(any_warehouse, "audience.win_back.email", results_dir=tmp_path)) == {}  # 8 vs 8


def test_raw_typed_timestamp_columns(any_warehouse: Warehouse, tmp_path: Path) -> None:
    """Raw tables may hold real timestamp types, not text: the same checks apply."""
    execute(any_warehouse, "create schema raw",
            "create table raw.orders (order_id varchar, ordered_at timestamp with time zone, status varchar)",
            "insert into raw.orders values ('o1', '2024-05-01 10:00:00.123+02', 'completed'),"
            " ('o2', '2024-05-31 23:00:00+00', null)")
    assert failing(run_suite(any_warehouse, "raw.orders", params=PARAMS, results_dir=tmp_path)) == {}
    execute(any_warehouse, "insert into raw.orders values ('o3', '2030-01-01 00:00:00+00', 'completed')")
    assert failing(run_suite(any_warehouse, "raw.orders", params=PARAMS, results_dir=tmp_path)) == {
        "ordered_at_not_in_future": "error"}
