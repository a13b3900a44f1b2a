"""Consent invariants, property-based (hypothesis): for random histories of consent signals
across customer records, subscribe/unsubscribe events and platform reports (unsubscribed,
complained, opted_out), the latest signal per channel decides, and a person without consent for
a channel is never an audience member on it; with consent and a qualifying action they are.

Each hypothesis example is a batch of 30 people built with one dbt run, so the property is
checked on every person of every example."""
from __future__ import annotations

import csv
import itertools
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
SIGNAL_SOURCES = ["customer", "event_subscribe", "event_unsubscribe", "msg_unsubscribed", "msg_complained",
                  "msg_opted_out"]
_run = itertools.count()

signal = st.tuples(st.sampled_from(SIGNAL_SOURCES), st.sampled_from(["email", "sms"]),
                   st.sampled_from(["subscribed", "unsubscribed", "never_subscribed"]),
                   st.integers(min_value=1, max_value=6).map(lambda d: d * 24 * 60))  # whole days before as_of: ties happen
person = st.lists(signal, min_size=0, max_size=5)


def iso(minutes_before: int) -> str:
    return (AS_OF - timedelta(minutes=minutes_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


STATUS_RANK = {"unsubscribed": 0, "subscribed": 1, "never_subscribed": 2}  # tie-break at equal times


def applies(source: str, channel: str, status: str) -> list[tuple[str, str]]:
    """(channel, status) pairs a raw signal sets, restating contract §1 independently of the SQL."""
    if source == "customer":
        return [("email", status), ("sms", status)]
    if source == "event_subscribe":
        return [(channel, "subscribed")]
    if source in ("event_unsubscribe", "msg_unsubscribed"):
        return [(channel, "unsubscribed")]
    if source == "msg_complained":
        return [("email", "unsubscribed")]
    return [("sms", "unsubscribed")]  # msg_opted_out


def expected_consent(history) -> dict[str, bool]:
    """The latest signal per channel wins; at equal times unsubscribing wins."""
    latest: dict[str, tuple[int, int, str]] = {}
    for source, channel, status, minutes in history:
        for ch, st_ in applies(source, channel, status):
            key = (-minutes, -STATUS_RANK[st_])
            if ch not in latest or key > latest[ch][:2]:
                latest[ch] = (*key, st_)
    return {ch: ch in latest and latest[ch][2] == "subscribed" for ch in ("email", "sms")}


def write_batch(root: Path, people: list[list[tuple]]) -> dict[str, dict[str, bool]]:
    expected = {}
    rows = {"customers": [], "events": [], "message_events": []}
    for i, history in enumerate(people):
        uid, email, phone = f"u{i}", f"person{i}@example.com", f"+1415555{i:04d}"
        # One customer record per person: its latest customer signal, if any, is the record's status.
        customer = min((h for h in history if h[0] == "customer"), key=lambda h: h[3], default=None)
        history = [h for h in history if h[0] != "customer"] + ([customer] if customer else [])
        rows["customers"].append({"customer_id": uid, "email": email, "phone": phone, "country": "US",
                                  "email_consent": customer[2] if customer else "",
                                  "sms_consent": customer[2] if customer else "",
                                  "created_at": iso(60 * 24 * 30), "updated_at": iso(customer[3] if customer else 60 * 24 * 30)})
        expected[uid] = expected_consent(history)
        for n, (source, channel, _status, minutes) in enumerate(history):
            if source.startswith("event_"):
                rows["events"].append({"event_id": f"c{i}-{n}", "event_type": source.split("_", 1)[1],
                                       "occurred_at": iso(minutes), "user_id": uid,
                                       "properties": f'{{"channel": "{channel}"}}'})
            elif source.startswith("msg_"):
                kind = source.split("_", 1)[1]
                ch = {"complained": "email", "opted_out": "sms"}.get(kind, channel)
                rows["message_events"].append({"message_id": f"m{i}-{n}", "channel": ch, "event": kind,
                                               "occurred_at": iso(minutes), "recipient": email if ch == "email" else phone,
                                               "campaign": "welcome"})
        # A qualifying action: an abandoned cart two hours before as_of.
        rows["events"].append({"event_id": f"cart{i}", "event_type": "add_to_cart", "occurred_at": iso(120),
                               "user_id": uid, "product_id": "sku-1", "cart_id": f"cart-{i}"})
    headers = {
        "customers": ["customer_id", "email", "phone", "country", "email_consent", "sms_consent", "created_at", "updated_at"],
        "events": ["event_id", "event_type", "occurred_at", "user_id", "product_id", "cart_id", "properties"],
        "message_events": ["message_id", "channel", "event", "occurred_at", "recipient", "campaign"],
    }
    root.mkdir(parents=True)
    for table, table_rows in rows.items():
        with open(root / f"{table}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=headers[table], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table_rows)
    (root / "products.csv").write_text("product_id,name\nsku-1,Thing\n")
    return expected


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.lists(person, min_size=30, max_size=30))
def test_no_member_without_consent_and_every_consenting_cart_is_reached(tmp_path, people):
    root = tmp_path / f"batch{next(_run)}"
    expected = write_batch(root / "input", people)
    warehouse = Warehouse(kind="duckdb", duckdb_path=root / "w.duckdb")
    load(warehouse, root / "input", replace=True)
    run_dbt(warehouse, "build", ["--select", "+audience_members"], as_of=AS_OF)
    engine = warehouse.engine()
    with engine.connect() as conn:
        members = conn.execute(sa.text(
            "select p.user_id, m.channel from audience_members m join profiles p using (profile_id)")).fetchall()
        consent = {r[0]: {"email": r[1], "sms": r[2]} for r in conn.execute(sa.text(
            "select user_id, email_consent, sms_consent from profiles where user_id is not null")).fetchall()}
    engine.dispose()
    reached = {(u, ch) for u, ch in members}
    for uid, exp in expected.items():
        assert consent[uid] == exp, (uid, people[int(uid[1:])], consent[uid], exp)
        for channel in ("email", "sms"):
            if not exp[channel]:
                assert (uid, channel) not in reached, f"{uid} reached on {channel} without consent"
            else:
                assert (uid, channel) in reached, f"{uid} consented to {channel} and carted, but was not reached"
