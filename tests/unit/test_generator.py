"""The demo data generator (seeds.generate): determinism, contract shape, ground truth, injected bad
rows and the recency conditions the default audiences need at as_of. Real files, read back with
DuckDB; 1,500 people per run keeps the module to a few seconds."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from orchestration.contract import RAW_TABLES
from seeds import bad_rows
from seeds.catalog import COUNTRIES
from seeds.generate import DEFAULT_AS_OF, PART, generate, main

PEOPLE = 1500
AS_OF = "TIMESTAMPTZ '2026-11-01 00:00:00+00'"
EMAIL_RE = r"[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}"


def table_digest(path: Path) -> str:
    """sha256 of a table's rows (logical content, independent of Parquet encoding details)."""
    digest = hashlib.sha256()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=20_000):
        for row in batch.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def digests(out: Path) -> dict[str, str]:
    return {t: table_digest(out / t / PART) for t in list(RAW_TABLES) + ["_truth"] if t != "_truth"} | {
        "_truth": table_digest(out / "_truth" / "identities.parquet")}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "demo"
    summary = generate(out, people=PEOPLE, seed=42)
    return out, summary


@pytest.fixture(scope="module")
def manifest(data: tuple[Path, dict]) -> dict:
    return json.loads((data[0] / "_truth" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def con(data: tuple[Path, dict]) -> duckdb.DuckDBPyConnection:
    out = data[0]
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    for table in RAW_TABLES:
        c.execute(f"create view {table} as select * from read_parquet('{out / table / PART}')")
    c.execute(f"create view truth as select * from read_parquet('{out / '_truth' / 'identities.parquet'}')")
    # usable events with their person (via the cookie; the kiosk device belongs to nobody)
    c.execute(f"""
        create view person_events as
        select t.person_id, e.event_type, e.product_id, cast(e.occurred_at as timestamptz) as ts
        from events e join truth t on t.identifier_type = 'anonymous_id' and t.identifier_value = e.anonymous_id
        where nullif(trim(e.event_id), '') is not null
          and try_strptime(e.occurred_at, '%Y-%m-%dT%H:%M:%SZ') is not null""")
    c.execute("""
        create view person_orders as
        select distinct t.person_id, o.order_id, cast(o.ordered_at as timestamptz) as ts, o.status
        from orders o join truth t on t.identifier_type = 'email' and t.identifier_value = lower(trim(o.email))""")
    return c


def one(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_gives_identical_rows_and_another_seed_does_not(data, tmp_path: Path) -> None:
    out, summary = data
    again = generate(tmp_path / "again", people=PEOPLE, seed=42)
    assert digests(out) == digests(tmp_path / "again")
    assert again["rows"] == summary["rows"]
    other = generate(tmp_path / "other", people=PEOPLE, seed=7)
    changed = {t for t, d in digests(tmp_path / "other").items() if d != digests(out)[t]}
    assert changed >= {"events", "customers", "orders", "message_events", "_truth"}
    assert other["kiosk_anonymous_id"] != summary["kiosk_anonymous_id"]


def test_default_as_of_is_fixed_not_now(data, manifest) -> None:
    assert DEFAULT_AS_OF == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert manifest["as_of"] == data[1]["as_of"] == "2026-11-01T00:00:00Z"


# --- contract shape ----------------------------------------------------------------------------

def test_every_contract_table_and_column_is_written(data, manifest) -> None:
    out = data[0]
    for table, spec in RAW_TABLES.items():
        schema = pq.read_schema(out / table / PART)
        assert tuple(schema.names) == spec.columns, table
        assert pq.ParquetFile(out / table / PART).metadata.num_rows == manifest["row_counts"][table] > 0
    assert manifest["row_counts"]["products"] == 200


def test_about_twenty_events_per_person(manifest) -> None:
    assert 12 <= manifest["row_counts"]["events"] / PEOPLE <= 30


def test_timestamps_are_iso_utc_text_inside_the_two_years_before_as_of(con, manifest) -> None:
    bad = set(bad_rows.BAD_TIMESTAMPS)
    for table, column in (("events", "occurred_at"), ("orders", "ordered_at"), ("message_events", "occurred_at"),
                          ("customers", "created_at"), ("customers", "updated_at")):
        rows = con.execute(f"select {column} from {table}").fetchall()
        good = [v for (v,) in rows if v not in bad]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v) for v in good), table
        lo, hi = min(good), max(good)
        assert "2024-11-01T00:00:00Z" <= lo and hi < manifest["as_of"], (table, lo, hi)


def test_products_have_replenishment_cycles_for_consumables_only(con) -> None:
    cycles = dict(con.execute("select category, any_value(replenishment_days) from products group by 1").fetchall())
    assert cycles["coffee"] == 30 and cycles["shampoo"] == 45 and cycles["vitamins"] == 60
    assert cycles["apparel"] is None and cycles["mugs"] is None
    assert one(con, "select count(*) from products where url <> 'https://shop.example/p/' || product_id") == 0


def test_orders_items_and_guest_orders_hang_together(con) -> None:
    assert one(con, "select count(*) from order_items i anti join orders o using (order_id)") == 0
    assert one(con, "select count(*) from orders where customer_id is null and email is not null") > 0
    assert one(con, """select count(*) from orders o join (select order_id, round(sum(quantity * unit_price), 2) s
                       from order_items group by 1) i using (order_id) where abs(o.total - i.s) > 0.01""") == 0
    assert set(dict(con.execute("select status, count(*) from orders group by 1").fetchall())) == {
        "completed", "cancelled", "refunded"}


def test_message_events_use_contract_values(con) -> None:
    assert {r[0] for r in con.execute("select distinct channel from message_events").fetchall()} == {"email", "sms"}
    events = {r[0] for r in con.execute("select distinct event from message_events").fetchall()}
    assert {"sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained", "opted_out"} <= events
    campaigns = {r[0] for r in con.execute("select distinct campaign from message_events").fetchall()}
    assert campaigns == {"welcome", "browse_abandonment", "cart_abandonment", "post_purchase_replenishment",
                         "win_back", "sunset"}
    assert one(con, "select count(*) from message_events where external_id is not null") == 0


def test_identifier_formats_vary_so_normalisation_matters(con) -> None:
    emails = [r[0] for r in con.execute("select email from events where email is not null").fetchall()]
    assert any(e != e.strip() for e in emails) and any(e != e.lower() for e in emails)
    phones = [r[0] for r in con.execute("select phone from events where phone is not null union all "
                                        "select phone from customers where phone is not null").fetchall()]
    for pattern in (r"\+1 \(\d{3}\) 555-\d{4}", r"\d{3}\.555\.\d{4}", r"\d{3}555\d{4}", r"\+44 77\d\d \d{6}"):
        assert any(re.fullmatch(pattern, p) for p in phones), pattern
    assert one(con, "select count(*) from customers where country in ('GB', 'United Kingdom') "
                    "and regexp_full_match(phone, '077\\d\\d \\d{6}')") > 0
    assert one(con, "select count(*) from customers where email_consent not in "
                    "('subscribed', 'unsubscribed', 'never_subscribed')") == 0


# --- ground truth ------------------------------------------------------------------------------

def test_truth_maps_each_identifier_to_exactly_one_person(con) -> None:
    assert one(con, """select count(*) from (select identifier_type, identifier_value from truth
                       group by 1, 2 having count(distinct person_id) > 1)""") == 0
    assert one(con, "select count(*) from (select identifier_type, identifier_value, count(*) c from truth "
                    "group by 1, 2 having c > 1)") == 0
    types = {r[0] for r in con.execute("select distinct identifier_type from truth").fetchall()}
    assert types == {"anonymous_id", "user_id", "email", "phone"}
    assert one(con, f"select count(*) from truth where identifier_type = 'email' "
                    f"and not regexp_full_match(identifier_value, '{EMAIL_RE}')") == 0
    assert one(con, "select count(*) from truth where identifier_type = 'phone' "
                    "and not regexp_full_match(identifier_value, '\\+[1-9]\\d{7,14}')") == 0


def test_truth_leaves_out_kiosk_and_junk_values(con, manifest) -> None:
    kiosk = manifest["kiosk"]["anonymous_ids"]
    assert one(con, f"select count(*) from truth where identifier_value in {tuple(kiosk) * 2}") == 0
    junk = manifest["junk_values"]["email"] + manifest["junk_values"]["phone"] + manifest["junk_values"]["literal"]
    assert one(con, f"select count(*) from truth where identifier_value in {tuple(junk)}") == 0


def test_every_truth_identifier_appears_on_a_usable_row(con) -> None:
    seen_emails = """select lower(trim(email)) v from events where nullif(trim(event_id), '') is not null
                     union select lower(trim(email)) from orders union select lower(trim(email)) from customers"""
    assert one(con, f"select count(*) from truth where identifier_type = 'email' "
                    f"and identifier_value not in ({seen_emails})") == 0
    assert one(con, "select count(*) from truth where identifier_type = 'anonymous_id' and identifier_value not in "
                    "(select anonymous_id from events where nullif(trim(event_id), '') is not null)") == 0
    assert one(con, "select count(*) from truth where identifier_type = 'user_id' and identifier_value not in "
                    "(select customer_id from customers)") == 0
    # and every cookie except the kiosk belongs to someone
    assert one(con, "select count(distinct anonymous_id) from events where anonymous_id not in "
                    "(select identifier_value from truth)") == 1


def e164(raw: str, calling_code: str) -> str | None:
    """The contract's phone rule (shared/contract.md §2), written out independently of the generator."""
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+"):
        candidate = "+" + digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif calling_code == "1" and len(digits) == 11 and digits.startswith("1"):
        candidate = "+" + digits
    elif calling_code != "1" and digits.startswith("0"):
        candidate = "+" + calling_code + digits[1:]
    else:
        candidate = "+" + calling_code + digits
    ok = re.fullmatch(r"\+[1-9]\d{7,14}", candidate) and set(digits) != {"0"}
    return candidate if ok else None


def test_every_raw_identifier_normalises_to_its_truth_value(con) -> None:
    truth = {(k, v): p for p, k, v in con.execute("select person_id, identifier_type, identifier_value from truth"
                                                  ).fetchall()}
    bad_phones = set(bad_rows.JUNK_PHONES + bad_rows.SHORT_PHONES)
    rows = con.execute("""select email, phone, 'US' from events where nullif(trim(event_id), '') is not null
                          union all select email, phone, 'US' from orders
                          union all select email, phone, country from customers""").fetchall()
    codes = {code: cc for code, _, _, cc, _ in COUNTRIES} | {name: cc for code, _, _, cc, name in COUNTRIES}
    bad_emails = set(bad_rows.JUNK_EMAILS + bad_rows.JUNK_LITERALS + bad_rows.MALFORMED_EMAILS)
    phones = emails = 0
    for email, phone, country in rows:
        if email is not None and email.strip().lower() not in bad_emails:
            assert ("email", email.strip().lower()) in truth, email
            emails += 1
        if phone is not None and phone not in bad_phones:
            assert ("phone", e164(phone, codes[country])) in truth, (phone, country)
            phones += 1
    assert emails > 1000 and phones > 300


def test_unlinkable_visitors_are_counted_in_the_manifest(con, manifest) -> None:
    visitors = one(con, """select count(*) from (select person_id from truth group by 1
                           having bool_and(identifier_type = 'anonymous_id') and count(*) > 1)""")
    assert visitors == manifest["unlinkable_visitors"]["people"] > 0


def test_people_have_several_cookies_and_some_never_identify(con) -> None:
    per_person = dict(con.execute("""select n, count(*) from (select person_id, count(*) n from truth
                                     where identifier_type = 'anonymous_id' group by 1) group by 1""").fetchall())
    assert max(per_person) >= 3 and per_person[1] > 0
    visitors = one(con, """select count(*) from (select person_id from truth group by 1
                           having bool_and(identifier_type = 'anonymous_id'))""")
    assert visitors > PEOPLE * 0.1


def test_kiosk_device_is_shared_by_200_shoppers_each_with_their_own_email(con, manifest) -> None:
    kiosk = manifest["kiosk"]["anonymous_ids"][0]
    assert manifest["kiosk"]["shoppers"] == 200
    emails = one(con, f"select count(distinct lower(trim(email))) from events where anonymous_id = '{kiosk}' "
                      "and event_type = 'identify'")
    people = one(con, f"""select count(distinct t.person_id) from events e join truth t
                          on t.identifier_type = 'email' and t.identifier_value = lower(trim(e.email))
                          where e.anonymous_id = '{kiosk}'""")
    assert emails == people == 200


# --- bad rows ----------------------------------------------------------------------------------

def test_injected_bad_rows_match_the_manifest(con, manifest) -> None:
    counts = manifest["bad_rows"]["events"]
    assert all(v > 0 for v in counts.values()) and set(counts) == set(bad_rows.EVENT_RATES)
    with_id = "from events where nullif(trim(event_id), '') is not null"
    found = {
        "missing_event_id": one(con, "select count(*) from events where nullif(trim(event_id), '') is null"),
        "unparseable_timestamp": one(con, "select count(*) from events "
                                          "where try_strptime(occurred_at, '%Y-%m-%dT%H:%M:%SZ') is null"),
        "duplicate_exact": one(con, f"select count(*) {with_id}") - one(con, f"select count(*) from (select distinct * {with_id})"),
        "duplicate_conflicting": one(con, f"select count(*) from (select distinct * {with_id})")
        - one(con, f"select count(distinct event_id) {with_id}"),
        "malformed_email": one(con, f"""select count(*) from events where email is not null
            and lower(trim(email)) not in {tuple(bad_rows.JUNK_LITERALS + bad_rows.JUNK_EMAILS)}
            and not regexp_full_match(lower(trim(email)), '{EMAIL_RE}')"""),
        "junk_email": one(con, f"select count(*) from events where email in {bad_rows.JUNK_EMAILS}"),
        "junk_phone": one(con, "select count(*) from events where phone = '0000000000'"),
        "short_phone": one(con, "select count(*) from events where length(regexp_replace(phone, '[^0-9]', '', 'g')) < 7"),
        "junk_literal": one(con, f"select count(*) from events where email in {bad_rows.JUNK_LITERALS} "
                                 f"or user_id in {bad_rows.JUNK_LITERALS}"),
    }
    assert found == counts
    customers = manifest["bad_rows"]["customers"]
    assert customers["junk_phone"] == one(con, "select count(*) from customers where phone = '0000000000'") > 0
    assert customers["short_phone"] == one(
        con, "select count(*) from customers where length(regexp_replace(phone, '[^0-9]', '', 'g')) < 7") > 0


def test_bad_timestamps_include_a_wellformed_but_impossible_date(con) -> None:
    values = {r[0] for r in con.execute("select occurred_at from events "
                                        "where try_strptime(occurred_at, '%Y-%m-%dT%H:%M:%SZ') is null").fetchall()}
    assert {"not-a-date", "2026-02-30T10:00:00Z"} <= values


# --- recency at as_of --------------------------------------------------------------------------

def test_someone_carted_30min_to_72h_ago_without_ordering_since(con) -> None:
    assert one(con, f"""
        with carts as (select person_id, max(ts) carted from person_events
                       where event_type in ('add_to_cart', 'checkout_started') group by 1),
             later as (select c.person_id from carts c join person_events e on e.person_id = c.person_id
                       and e.event_type = 'order_completed' and e.ts >= c.carted
                       union select c.person_id from carts c join person_orders o
                       on o.person_id = c.person_id and o.ts >= c.carted)
        select count(*) from carts where carted between {AS_OF} - interval 72 hour and {AS_OF} - interval 30 minute
          and person_id not in (select person_id from later)""") >= 10


def test_someone_viewed_products_in_the_last_day_without_carting(con) -> None:
    assert one(con, f"""
        with views as (select person_id, max(ts) viewed from person_events where event_type = 'product_view'
                       group by 1)
        select count(*) from views v where viewed > {AS_OF} - interval 24 hour
          and not exists (select 1 from person_events e where e.person_id = v.person_id and e.ts >= v.viewed
                          and e.event_type in ('add_to_cart', 'checkout_started', 'order_completed'))""") >= 10


def test_someone_subscribed_in_the_last_week_without_ordering(con) -> None:
    assert one(con, f"""
        select count(distinct person_id) from person_events p
        where event_type = 'subscribe' and ts > {AS_OF} - interval 7 day
          and not exists (select 1 from person_orders o where o.person_id = p.person_id)
          and not exists (select 1 from person_events e where e.person_id = p.person_id
                          and e.event_type = 'order_completed')""") >= 10


def test_someone_has_a_replenishable_product_due(con) -> None:
    assert one(con, f"""
        with bought as (select o.person_id, i.product_id, max(o.ts) last_bought, any_value(p.replenishment_days) cycle_days
                        from person_orders o join order_items i using (order_id) join products p using (product_id)
                        where o.status = 'completed' and p.replenishment_days is not null group by 1, 2)
        select count(distinct person_id) from bought
        where last_bought + cycle_days * interval 1 day between {AS_OF} - interval 7 day and {AS_OF} + interval 7 day
        """) >= 10


def test_there_are_lapsed_buyers(con) -> None:
    assert one(con, f"""
        select count(*) from (select person_id, max(ts) last_order from person_orders where status = 'completed'
                              group by 1)
        where last_order between {AS_OF} - interval 365 day and {AS_OF} - interval 180 day""") >= 10


def test_some_subscribers_never_engage_and_reach_the_sunset_threshold(con) -> None:
    assert one(con, """select count(*) from (select lower(trim(recipient)) r from message_events where channel = 'email'
                       group by 1 having count(*) filter (event = 'sent') >= 4
                       and count(*) filter (event in ('opened', 'clicked')) = 0)""") >= 10


# --- scale, arguments, CLI ---------------------------------------------------------------------

def test_many_small_chunks_keep_ids_unique_and_truth_consistent(tmp_path: Path) -> None:
    out = tmp_path / "chunked"
    summary = generate(out, people=1000, seed=3, chunk_people=130)
    c = duckdb.connect()
    ev = f"read_parquet('{out / 'events' / PART}')"
    truth = f"read_parquet('{out / '_truth' / 'identities.parquet'}')"
    manifest = json.loads((out / "_truth" / "manifest.json").read_text())
    dupes = manifest["bad_rows"]["events"]["duplicate_exact"] + manifest["bad_rows"]["events"]["duplicate_conflicting"]
    assert c.execute(f"select count(*) - count(distinct event_id) from {ev} where nullif(trim(event_id), '') is not null"
                     ).fetchone()[0] == dupes
    assert c.execute(f"select count(*) from (select identifier_value from {truth} group by 1 "
                     "having count(distinct person_id) > 1)").fetchone()[0] == 0
    assert c.execute(f"select count(distinct person_id) from {truth}").fetchone()[0] == 1000
    assert summary["rows"]["events"] == manifest["row_counts"]["events"]


def test_small_runs_scale_the_kiosk_down(tmp_path: Path) -> None:
    summary = generate(tmp_path / "tiny", people=40, seed=1)
    manifest = json.loads((tmp_path / "tiny" / "_truth" / "manifest.json").read_text())
    assert manifest["kiosk"]["shoppers"] == 8
    kiosk = c_count = duckdb.connect().execute(
        f"select count(distinct lower(trim(email))) from read_parquet('{tmp_path / 'tiny' / 'events' / PART}') "
        f"where anonymous_id = '{summary['kiosk_anonymous_id']}' and event_type = 'identify'").fetchone()[0]
    assert kiosk == c_count == 8


def test_rerun_replaces_earlier_output(tmp_path: Path) -> None:
    generate(tmp_path / "d", people=300, seed=1)
    summary = generate(tmp_path / "d", people=100, seed=1)
    assert pq.ParquetFile(tmp_path / "d" / "events" / PART).metadata.num_rows == summary["rows"]["events"]
    assert sorted(p.name for p in (tmp_path / "d" / "events").iterdir()) == [PART]


@pytest.mark.parametrize("people, chunk, message", [(0, 10, "people must be between 1"),
                                                     (10, 0, "chunk_people must be at least 1")])
def test_bad_arguments_say_what_to_do(tmp_path: Path, people: int, chunk: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x", people=people, chunk_people=chunk)
    assert not (tmp_path / "x").exists()


def test_cli_help_and_run(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(main, ["--help"]).output
    assert "--people" in help_text and "--seed" in help_text and "--as-of" in help_text
    result = runner.invoke(main, ["--people", "60", "--seed", "5", "--out", str(tmp_path / "cli"),
                                  "--as-of", "2026-06-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["as_of"] == "2026-06-01T00:00:00Z" and summary["people"] == 60
    latest = duckdb.connect().execute(
        f"select max(occurred_at) from read_parquet('{tmp_path / 'cli' / 'events' / PART}') "
        "where occurred_at like '2%Z'").fetchone()[0]
    assert latest < "2026-06-01T00:00:00Z"
    bad = runner.invoke(main, ["--people", "0", "--out", str(tmp_path / "no")])
    assert bad.exit_code != 0 and "--people" in bad.output
