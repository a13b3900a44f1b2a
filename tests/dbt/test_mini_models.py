"""Behaviour of the contract marts on a small fixture, on DuckDB and PostgreSQL."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from orchestration.contract import CONTRACT_MARTS

RUN_STAMPS = {"changed_at"}  # write stamp of identity_map and lifecycle_stage_history: the start of the run that wrote the row


def test_contract_marts_exist_and_are_not_empty(built):
    for mart in CONTRACT_MARTS:
        assert built.scalar(f"select count(*) from {mart}") > 0, mart


def test_multi_hop_chain_collapses_into_one_profile(built):
    # cookie-a1 -> email -> cookie-a2 -> user u-alice -> cookie-a3 -> phone -> cookie-a4,
    # with the email and phone in different formats on different records.
    alice = built.profile_of("user_id", "u-alice")
    assert alice is not None
    for kind, value in [("anonymous_id", "cookie-a1"), ("anonymous_id", "cookie-a2"), ("anonymous_id", "cookie-a3"),
                        ("anonymous_id", "cookie-a4"), ("email", "alice.smith@example.com"),
                        ("phone", "+14155550101")]:
        assert built.profile_of(kind, value) == alice, (kind, value)
    assert built.scalar(f"select count(*) from identity_map where profile_id = '{alice}'") == 7


def test_kiosk_device_leaves_each_shopper_their_own_profile(built):
    shoppers = {built.profile_of("email", f"shopper{i}@example.com") for i in range(1, 7)}
    assert None not in shoppers and len(shoppers) == 6
    assert built.profile_of("anonymous_id", "kiosk-1") is None
    reason, linked = built.rows("select reason, linked_count from identity_exclusions "
                                "where identifier_type = 'anonymous_id' and identifier_value = 'kiosk-1'")[0]
    assert linked == 6 and "limit 5" in reason


def test_junk_email_links_nobody(built):
    assert built.profile_of("email", "test@test.com") is None
    assert built.profile_of("anonymous_id", "cookie-j1") != built.profile_of("anonymous_id", "cookie-j2")
    assert built.rows("select reason from identity_exclusions where identifier_value = 'test@test.com'")[0][0] \
        .startswith("blocklisted")


def test_phone_normalised_with_the_customers_country(built):
    # Carol's UK national number 07700 900123 with country GB.
    assert built.profile_of("phone", "+447700900123") == built.profile_of("user_id", "u-carol")


def test_bad_rows_are_quarantined_with_reasons(built):
    rows = set(built.rows("select source_table, source_key, reason, action from quarantine"))
    assert ("events", "bad-ts", "unparseable_timestamp", "dropped") in rows
    assert ("events", "b1", "duplicate_event_id", "dropped") in rows
    assert ("events", "bad-email", "malformed_email", "repaired") in rows
    assert any(r[2] == "missing_event_id" and r[1].startswith("row:") for r in rows)
    # The duplicate is dropped, the first copy kept.
    assert built.scalar("select count(*) from staging.stg_events where event_id = 'b1'") == 1


def test_profiles_survivorship_consent_and_orders(built):
    alice = built.profile_of("user_id", "u-alice")
    row = built.rows(f"select email, phone, first_name, email_consent, sms_consent, orders_count, total_revenue, "
                     f"lifecycle_stage from profiles where profile_id = '{alice}'")[0]
    # The refunded order does not count as a purchase.
    assert row == ("alice.smith@example.com", "+14155550101", "Alice", True, True, 1, 30.0, "new_customer")


def test_stage_history_replays_decay_for_a_silent_repeat_buyer(built):
    carol = built.profile_of("user_id", "u-carol")
    stages = built.rows(f"select stage, valid_to is null from lifecycle_stage_history "
                        f"where profile_id = '{carol}' order by valid_from")
    assert [s for s, _ in stages] == ["prospect", "new_customer", "repeat_customer", "at_risk", "lapsed", "churned"]
    assert [current for _, current in stages] == [False] * 5 + [True]


def test_audiences_respect_consent_priority_and_payload(built):
    members = {(a, c, p): (email, holdout, payload) for a, c, p, email, holdout, payload in built.rows(
        "select audience, channel, profile_id, email, is_holdout, payload from audience_members")}
    bob = built.profile_of("user_id", "u-bob")
    alice = built.profile_of("user_id", "u-alice")
    carol = built.profile_of("user_id", "u-carol")
    # Bob subscribed 2 days before as_of and carted: cart_abandonment outranks welcome on email.
    assert ("cart_abandonment", "email", bob) in members and ("welcome", "email", bob) not in members
    payload = json.loads(members[("cart_abandonment", "email", bob)][2])
    assert payload["product_name"] == "Enamel Mug" and payload["first_name"] == "Bob" and payload["step"] == 1
    # Bob never gave SMS consent: no SMS audience.
    assert not any(c == "sms" and p == bob for _, c, p in members)
    # Alice: browse abandonment by email, replenishment (coffee due) by SMS.
    assert ("browse_abandonment", "email", alice) in members
    assert ("post_purchase_replenishment", "sms", alice) in members
    # Carol: 4 sends without engagement -> sunset, and nothing else by email.
    assert [a for a, c, p in members if p == carol and c == "email"] == ["sunset"]


@pytest.mark.parametrize("mart", ["identity_map", "identity_exclusions", "profiles", "lifecycle_stage_history",
                                  "audience_members", "quarantine"])
def test_marts_identical_on_duckdb_and_postgres(duck_built, pg_built, mart):
    def value(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return str(round(v, 6))
        if isinstance(v, str) and v.startswith("{"):
            # JSON text: engines differ only in whitespace, so compare the parsed content.
            return json.dumps(json.loads(v), sort_keys=True)
        return str(v)

    def canonical(built):
        # Each build's write stamp (the start of its own run) differs by design.
        with built.engine.connect() as conn:
            columns = [c for c in conn.execute(sa.text(f"select * from {mart} where 1 = 0")).keys() if c not in RUN_STAMPS]
        return sorted(tuple(value(v) for v in r) for r in built.rows(f"select {', '.join(columns)} from {mart}"))

    assert canonical(duck_built) == canonical(pg_built)
