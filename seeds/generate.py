"""Deterministic, scalable demo data for Lifeline: the six raw contract tables plus ground truth.

    python -m seeds.generate --people 100000 --seed 42 --out demo_data/
    generate(Path("demo_data"), people=100_000, seed=42)      # -> summary dict

Output: `OUT/<table>/part-00000.parquet` for events, customers, orders, order_items, products,
message_events (every contract column, contract names; timestamps as ISO-8601 UTC text such as
`2026-10-31T18:04:05Z`; numbers as doubles/ints; properties as JSON text), and beside them
`OUT/_truth/identities.parquet` (person_id, identifier_type, identifier_value: every normalised
identifier that belongs to exactly one person) and `OUT/_truth/manifest.json` (seed, people,
as_of, row counts, kiosk anonymous_id, junk and malformed values, injected bad rows per kind).

Determinism: the same seed, people, as_of and chunk_people give identical rows. Nothing reads
the clock: as_of defaults to 2026-11-01T00:00:00Z and all activity lies in the 730 days before it.

Scale: people are generated in chunks (default 50,000) with vectorised numpy/Arrow code and
appended to one Parquet file per table as row groups, so memory depends on the chunk size, not on
--people (1,000 to 5,000,000; identifiers stay unique up to 7,000,000 people). Measured on 2 cores
(benchmarks/bench_generator.py): 100,000 people 9 s / 0.9 GB peak RSS; 1,000,000 people (22.6M
events) 50 s / 0.94 GB; --chunk-people 20000 brings 1,000,000 people to 0.53 GB in 63 s.

Ground truth covers every identifier seen on a usable row. Visitors who never identify but use
two devices have two cookies that nothing in the data links; the manifest counts them
(`unlinkable_visitors`) so identity scores can allow for them.

The journeys (see seeds.people, seeds.journeys, seeds.messages for the detail):
- People: 22% visitors who never identify (1-2 cookies), 18% newsletter subscribers, 15% guest
  buyers (orders with email, no customer_id), 45% members (a customers row; customer_id =
  user_id; 70% of them buy). Identified people use 1-4 cookies (devices); they identify at a
  signup/subscribe session (identify or subscribe event with email and/or user_id and the cookie)
  or at their first checkout (order_completed event and order with anonymous_id + email); each
  later cookie starts with an identify (login, or email-link click for guests).
- About 20-23 events per person: sessions of page views, product views (mostly favourite
  categories), add/remove to cart (cart_id), checkout_started, order_completed; 35% of buyers
  re-buy a consumable (coffee 30 days, tea 40, shampoo 45, vitamins 60, pet food 30) every cycle.
- Consent: subscribe events at identification (channel email or sms); unsubscribes by a
  preference-centre unsubscribe event or an email `unsubscribed`/`complained`, SMS `opted_out`.
- Message events for welcome, browse/cart abandonment, replenishment, win-back and sunset sends.
- Guaranteed at as_of, among identified people: ~3% carted or started checkout 2-70 h before
  as_of and never ordered since (cart abandonment), ~3% viewed products 1.5-22 h before as_of and
  did nothing since (browse abandonment), ~2.5% subscribed in the last 6.5 days and never ordered
  (welcome), ~2.5% bought a consumable whose cycle falls due within 6 days of as_of
  (replenishment), ~3% whose last order was 185-360 days ago (lapsed). Others stop visiting
  after an exponential lifetime (mean 240 days), which produces at-risk and churned buyers.
- A shared in-store kiosk: one anonymous_id on which 200 shoppers (fewer below 1,000 people,
  at least 6) each identify with their own email. It is never in the ground truth.
- Identifier formats vary: `  Jane.Doe1@Example.COM `, `+1 (415) 555-0123`, `415.555.0123`,
  `4155550123`, `+44 7700 900123`, and `07700 900123` in GB customer rows.
- Bad rows (seeds.bad_rows has the detail), per generated event row: exact duplicate 0.2%, same
  event_id with a different payload 0.05%, missing event_id 0.05%, unparseable occurred_at 0.05%
  (`not-a-date`, `2026-02-30T10:00:00Z`, ...), malformed email 0.03% (`john@`, `not-an-email`),
  placeholder email 0.02% (`test@test.com`), phone `0000000000` 0.02%, too-short phone 0.02%,
  `null`/`undefined` typed into user_id or email 0.1%; per customer row: phone `0000000000` 1%,
  too-short phone 0.5%. At least one of each kind per chunk; exact counts in the manifest.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.contract import RAW_TABLES
from seeds import bad_rows
from seeds.catalog import Catalog, build_catalog
from seeds.customers import build_customers
from seeds.journeys import Journeys, build_journeys
from seeds.messages import build_message_events
from seeds.people import (
    HISTORY_DAYS, KIND_SHARES, MAX_PEOPLE, SCENARIO_NAMES, Cohort, Identifiers, build_cohort, build_identifiers,
    kiosk_shopper_count,
)
from seeds.textcols import uuid_like

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEFAULT_CHUNK_PEOPLE = 50_000
TABLES = tuple(RAW_TABLES)
AS_OF_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
PART = "part-00000.parquet"
WRITE_SLICE_ROWS = 250_000
KIND_NAMES = ("visitor", "subscriber", "guest_buyer", "member")
_NUMERIC = {"value": pa.float64(), "total": pa.float64(), "quantity": pa.int64(), "unit_price": pa.float64(),
            "price": pa.float64(), "replenishment_days": pa.int64()}
TRUTH_SCHEMA = pa.schema([("person_id", pa.int64()), ("identifier_type", pa.string()),
                          ("identifier_value", pa.string())])


def table_schema(table: str) -> pa.Schema:
    """Contract columns in contract order; text unless the column is a number."""
    return pa.schema([(col, _NUMERIC.get(col, pa.string())) for col in RAW_TABLES[table].columns])


def kiosk_anonymous_id(seed: int) -> str:
    return uuid_like(np.array([1 << 63], dtype=np.uint64), seed)[0].as_py()


def _utc(as_of: datetime | None) -> datetime:
    if as_of is None:
        return DEFAULT_AS_OF
    return as_of.replace(tzinfo=timezone.utc) if as_of.tzinfo is None else as_of.astimezone(timezone.utc)


def _truth_rows(cohort: Cohort, ids: Identifiers, journeys: Journeys,
                customer_people: np.ndarray) -> tuple[pa.Table, int]:
    """Identifiers of each person that appear on at least one usable row (events, orders, customers),
    and how many people are visitors with more than one cookie (no data links those cookies)."""
    n = len(cohort)
    member = np.zeros(n, bool)
    member[customer_people] = True
    cookie_ok = journeys.event_cookie >= 0
    pairs = np.unique(journeys.event_person[cookie_ok] * 8 + journeys.event_cookie[cookie_ok])
    people, cookie = pairs // 8, pairs % 8
    emitted = journeys.emitted
    parts = [(people, "anonymous_id", ids.cookies.take(pa.array(people * 4 + cookie)))]
    for kind, array, extra in (("user_id", ids.user_id, member), ("email", ids.email, member),
                               ("phone", ids.phone, member & cohort.has_phone)):
        who = np.flatnonzero(emitted[kind] | extra)
        parts.append((who, kind, array.take(pa.array(who))))
    unlinkable = int(np.count_nonzero((np.bincount(people, minlength=n) > 1) & ~cohort.identified))
    return pa.table({
        "person_id": pa.array(np.concatenate([cohort.gid[p] for p, _, _ in parts]), pa.int64()),
        "identifier_type": pa.array(np.concatenate([np.full(len(p), k, dtype=object) for p, k, _ in parts]),
                                    pa.string()),
        "identifier_value": pa.concat_arrays([v.cast(pa.string()) for _, _, v in parts]),
    }, schema=TRUTH_SCHEMA), unlinkable


def _write(writer: pq.ParquetWriter, table: pa.Table, order: np.ndarray | None = None,
           slice_rows: int = WRITE_SLICE_ROWS) -> None:
    """Append a table (optionally reordered) in slices, so a reorder never copies the whole chunk at once."""
    table = table.cast(writer.schema)
    if order is None:
        writer.write_table(table)
        return
    for lo in range(0, len(order), slice_rows):
        writer.write_table(table.take(pa.array(order[lo:lo + slice_rows])))


def _check_args(people: int, chunk_people: int) -> None:
    if not 1 <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be between 1 and {MAX_PEOPLE:,} (got {people:,}); identifiers are "
                         "derived from the person index and stay unique only up to that size")
    if chunk_people < 1:
        raise ValueError(f"chunk_people must be at least 1 (got {chunk_people}); the default is "
                         f"{DEFAULT_CHUNK_PEOPLE:,}")


@dataclass
class Chunk:
    """Everything generated for one chunk of people, ready to append."""

    tables: dict[str, pa.Table]
    event_order: np.ndarray  # events are written in time order within the chunk
    truth: pa.Table
    faults: dict[str, dict[str, int]]
    unlinkable: int
    kinds: np.ndarray
    scenarios: np.ndarray


def build_chunk(index: int, gid: np.ndarray, people: int, seed: int, as_of: int, catalog: Catalog,
                kiosk_id: str) -> Chunk:
    """One chunk of people from its own random stream: seed and chunk index fix every row."""
    rng = np.random.default_rng([seed, index])
    cohort = build_cohort(rng, gid, people, as_of, catalog)
    ids = build_identifiers(cohort, seed)
    journeys = build_journeys(rng, cohort, ids, catalog, as_of, seed, kiosk_id)
    customers, customer_people = build_customers(rng, cohort, ids)
    messages = build_message_events(rng, cohort, ids, journeys.buyers, as_of, seed)
    events, times, event_faults = bad_rows.inject_event_faults(rng, journeys.events, journeys.event_time, index,
                                                               seed)
    customers, customer_faults = bad_rows.inject_customer_faults(rng, customers)
    truth, unlinkable = _truth_rows(cohort, ids, journeys, customer_people)
    return Chunk(tables={"events": events, "customers": customers, "orders": journeys.orders,
                         "order_items": journeys.order_items, "message_events": messages},
                 event_order=np.argsort(times, kind="stable"), truth=truth,
                 faults={"events": event_faults, "customers": customer_faults}, unlinkable=unlinkable,
                 kinds=cohort.kind, scenarios=cohort.scenario)


@dataclass
class Tally:
    """Counts across chunks, for the manifest."""

    rows: Counter = field(default_factory=Counter)
    faults: dict[str, Counter] = field(default_factory=lambda: {"events": Counter(), "customers": Counter()})
    kinds: Counter = field(default_factory=Counter)
    scenarios: Counter = field(default_factory=Counter)
    truth_rows: int = 0
    unlinkable: int = 0

    def add(self, chunk: Chunk) -> None:
        for name, table in chunk.tables.items():
            self.rows[name] += table.num_rows
        for table, counts in chunk.faults.items():
            self.faults[table].update(counts)
        for counter, codes, names in ((self.kinds, chunk.kinds, KIND_NAMES),
                                      (self.scenarios, chunk.scenarios, SCENARIO_NAMES)):
            values, counts = np.unique(codes, return_counts=True)
            counter.update({names[v]: int(c) for v, c in zip(values, counts)})
        self.truth_rows += chunk.truth.num_rows
        self.unlinkable += chunk.unlinkable


def _manifest(tally: Tally, seed: int, people: int, as_of: datetime, chunk_people: int, kiosk_id: str) -> dict:
    return {
        "generator": "seeds.generate",
        "seed": seed,
        "people": people,
        "as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "chunk_people": chunk_people,
        "history_days": HISTORY_DAYS,
        "row_counts": {t: int(tally.rows[t]) for t in TABLES},
        "truth_identities": tally.truth_rows,
        "unlinkable_visitors": {"people": tally.unlinkable, "why": "visitors who never identify on two devices: "
                                "their cookies share no identifier, so no stitching can join them"},
        "people_by_kind": {k: tally.kinds.get(k, 0) for k in KIND_NAMES},
        "kind_shares": dict(zip(KIND_NAMES, KIND_SHARES)),
        "scenarios": {k: tally.scenarios.get(k, 0) for k in SCENARIO_NAMES if k != "none"},
        "kiosk": {"anonymous_ids": [kiosk_id], "shoppers": kiosk_shopper_count(people)},
        "junk_values": {"email": list(bad_rows.JUNK_EMAILS), "phone": list(bad_rows.JUNK_PHONES),
                        "literal": list(bad_rows.JUNK_LITERALS)},
        "malformed_values": {"email": list(bad_rows.MALFORMED_EMAILS), "phone": list(bad_rows.SHORT_PHONES),
                             "occurred_at": list(bad_rows.BAD_TIMESTAMPS)},
        "bad_rows": {table: {k: int(v) for k, v in sorted(c.items())} for table, c in tally.faults.items()},
        "bad_row_rates": {"events": bad_rows.EVENT_RATES, "customers": bad_rows.CUSTOMER_RATES},
    }


def generate(out_dir: Path, people: int, seed: int = 42, as_of: datetime | None = None,
             chunk_people: int = DEFAULT_CHUNK_PEOPLE) -> dict:
    """Write the demo tables and ground truth under out_dir (replacing earlier output); return a summary."""
    _check_args(people, chunk_people)
    started = time.monotonic()
    as_of_dt = _utc(as_of)
    out = Path(out_dir)
    for sub in TABLES + ("_truth",):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)

    catalog = build_catalog(seed)
    kiosk_id = kiosk_anonymous_id(seed)
    tally = Tally()
    writers = {t: pq.ParquetWriter(out / t / PART, table_schema(t)) for t in TABLES}
    truth_writer = pq.ParquetWriter(out / "_truth" / "identities.parquet", TRUTH_SCHEMA)
    try:
        _write(writers["products"], catalog.table)
        tally.rows["products"] = catalog.table.num_rows
        for index, lo in enumerate(range(0, people, chunk_people)):
            gid = np.arange(lo, min(lo + chunk_people, people), dtype=np.int64)
            chunk = build_chunk(index, gid, people, seed, int(as_of_dt.timestamp()), catalog, kiosk_id)
            for name, table in chunk.tables.items():
                _write(writers[name], table, chunk.event_order if name == "events" else None)
            truth_writer.write_table(chunk.truth)
            tally.add(chunk)
            del chunk
    finally:
        for writer in list(writers.values()) + [truth_writer]:
            writer.close()

    manifest = _manifest(tally, seed, people, as_of_dt, chunk_people, kiosk_id)
    (out / "_truth" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {"out_dir": str(out), "people": people, "seed": seed, "as_of": manifest["as_of"],
            "rows": manifest["row_counts"], "kiosk_anonymous_id": kiosk_id, "truth_identities": tally.truth_rows,
            "seconds": round(time.monotonic() - started, 2)}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--people", type=click.IntRange(1, MAX_PEOPLE), required=True, help="How many people to simulate.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: same seed, same data.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write <table>/part-00000.parquet and _truth/ into (replaced if present).")
@click.option("--as-of", "as_of", type=click.DateTime(AS_OF_FORMATS),
              default=None, help="The moment the data leads up to, UTC [default: 2026-11-01T00:00:00Z].")
@click.option("--chunk-people", type=click.IntRange(1), default=DEFAULT_CHUNK_PEOPLE, show_default=True,
              help="People per chunk: bounds memory; part of what makes output reproducible.")
def main(people: int, seed: int, out_dir: Path, as_of: datetime | None, chunk_people: int) -> None:
    """Generate deterministic demo data for Lifeline (raw contract tables + ground truth)."""
    summary = generate(out_dir, people=people, seed=seed, as_of=as_of, chunk_people=chunk_people)
    click.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
