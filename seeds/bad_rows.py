"""Bad rows, injected at small fixed rates so every cleaning rule has something to catch.

Rates are per generated event row (per customer row for `customers`), rounded, at least one of
each kind per chunk. Every injected row is counted by kind in `_truth/manifest.json`.

events (extra rows unless noted; copies keep the source row's person and cookie, so no
person's identifiers exist only on a bad row):
  duplicate_exact               0.20%  an identical second copy of a row
  duplicate_conflicting         0.05%  same event_id, later occurred_at and different properties
  missing_event_id              0.05%  a copy with event_id null or ''
  unparseable_timestamp         0.05%  a copy with a new id and occurred_at such as `not-a-date`,
                                       `2026-02-30T10:00:00Z`
  malformed_email               0.03%  an identify with `john@`, `not-an-email`, ...
  junk_email                    0.02%  an identify with a placeholder such as `test@test.com`
  junk_phone                    0.02%  an identify with phone `0000000000`
  short_phone                   0.02%  an identify with a too-short phone (`12345`)
  junk_literal                  0.10%  in place: user_id or email set to `null` / `undefined` on a
                                       row that had none
customers (in place, on rows without a phone):
  junk_phone 1%, short_phone 0.5%
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seeds.textcols import hex_ids, iso_utc, pick

MALFORMED_EMAILS = ("john@", "not-an-email", "jane.doe@", "@example.com", "mary.smith@example", "bob@@example.com")
JUNK_EMAILS = ("test@test.com", "noemail@noemail.com", "a@a.com")
JUNK_PHONES = ("0000000000",)
SHORT_PHONES = ("12345", "555-01", "+44 77")
JUNK_LITERALS = ("null", "undefined")
BAD_TIMESTAMPS = ("not-a-date", "2026-02-30T10:00:00Z", "", "31/12/2025 25:61", "yesterday")

EVENT_RATES = {
    "duplicate_exact": 0.002,
    "duplicate_conflicting": 0.0005,
    "missing_event_id": 0.0005,
    "unparseable_timestamp": 0.0005,
    "malformed_email": 0.0003,
    "junk_email": 0.0002,
    "junk_phone": 0.0002,
    "short_phone": 0.0002,
    "junk_literal": 0.001,
}
CUSTOMER_RATES = {"junk_phone": 0.01, "short_phone": 0.005}
_IDENTIFY_RESET = ("user_id", "email", "phone", "product_id", "cart_id", "order_id", "value")


def _count(rate: float, rows: int) -> int:
    return max(1, round(rate * rows)) if rows else 0


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values.cast(table.schema.field(name).type))


def _as_identify(rows: pa.Table, ids: pa.Array, field: str, values: pa.Array) -> pa.Table:
    """Source rows turned into form submissions (identify) carrying one bad identifier."""
    n = rows.num_rows
    for name in _IDENTIFY_RESET:
        rows = _replace(rows, name, pa.nulls(n, rows.schema.field(name).type))
    rows = _replace(rows, "event_id", ids)
    rows = _replace(rows, "event_type", pa.array(["identify"] * n, pa.string()))
    rows = _replace(rows, "properties", pa.array(['{"method": "form"}'] * n, pa.string()))
    return _replace(rows, field, values)


def inject_event_faults(rng: np.random.Generator, events: pa.Table, times: np.ndarray, chunk: int,
                        seed: int) -> tuple[pa.Table, np.ndarray, dict[str, int]]:
    """(events with bad rows, time of each row for ordering, count per kind)."""
    n = events.num_rows
    k = {kind: _count(rate, n) for kind, rate in EVENT_RATES.items()}
    extra_key = iter(range(1 << 24))

    def new_ids(count: int) -> pa.Array:
        keys = np.array([next(extra_key) for _ in range(count)], dtype=np.uint64)
        return hex_ids("evt_", keys | np.uint64((1 << 62) | (chunk << 24)), seed)

    def sources(count: int) -> np.ndarray:
        return np.sort(rng.integers(0, n, count))

    extras: list[tuple[pa.Table, np.ndarray]] = []
    exact = sources(k["duplicate_exact"])
    extras.append((events.take(pa.array(exact)), times[exact]))
    conflicting = sources(k["duplicate_conflicting"])
    later = times[conflicting] + rng.integers(1, 600, len(conflicting))
    rows = _replace(events.take(pa.array(conflicting)), "occurred_at", iso_utc(later))
    rows = _replace(rows, "properties", pa.array([f'{{"redelivered": true, "attempt": {i + 2}}}'
                                                  for i in range(len(conflicting))], pa.string()))
    extras.append((rows, later))
    missing = sources(k["missing_event_id"])
    blank = pick((None, ""), np.arange(len(missing)) % 2)
    extras.append((_replace(events.take(pa.array(missing)), "event_id", blank), times[missing]))
    bad_ts = sources(k["unparseable_timestamp"])
    rows = _replace(events.take(pa.array(bad_ts)), "event_id", new_ids(len(bad_ts)))
    rows = _replace(rows, "occurred_at", pick(BAD_TIMESTAMPS, np.arange(len(bad_ts)) % len(BAD_TIMESTAMPS)))
    extras.append((rows, times[bad_ts]))
    for kind, field, values in (("malformed_email", "email", MALFORMED_EMAILS), ("junk_email", "email", JUNK_EMAILS),
                                ("junk_phone", "phone", JUNK_PHONES), ("short_phone", "phone", SHORT_PHONES)):
        src = sources(k[kind])
        rows = _as_identify(events.take(pa.array(src)), new_ids(len(src)), field,
                            pick(values, rng.integers(0, len(values), len(src))))
        extras.append((rows, times[src]))

    # junk literals in place, on rows nobody copied (a copy must stay identical to its source)
    copied = np.zeros(n, bool)
    copied[np.concatenate([exact, conflicting, missing])] = True
    empty = ~copied & pc.is_null(events["user_id"]).to_numpy(zero_copy_only=False) \
        & pc.is_null(events["email"]).to_numpy(zero_copy_only=False)
    candidates = np.flatnonzero(empty)
    chosen = np.sort(rng.choice(candidates, min(k["junk_literal"], len(candidates)), replace=False))
    k["junk_literal"] = len(chosen)
    field_is_email = rng.random(len(chosen)) < 0.5
    literal = rng.integers(0, len(JUNK_LITERALS), len(chosen))
    for name, mask in (("email", field_is_email), ("user_id", ~field_is_email)):
        index = np.full(n, -1)
        index[chosen[mask]] = literal[mask]
        column = pc.if_else(pa.array(index >= 0), pick(JUNK_LITERALS, np.maximum(index, 0)), events[name])
        events = _replace(events, name, column)

    table = pa.concat_tables([events] + [t for t, _ in extras])
    all_times = np.concatenate([times] + [t for _, t in extras])
    return table, all_times, k


def inject_customer_faults(rng: np.random.Generator, customers: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Junk and too-short phones typed into the phone field of customers who gave none."""
    free = np.flatnonzero(pc.is_null(customers["phone"]).to_numpy(zero_copy_only=False))
    rng.shuffle(free)
    counts: dict[str, int] = {}
    index = np.full(customers.num_rows, -1)
    values: list[str] = []
    for kind, options in (("junk_phone", JUNK_PHONES), ("short_phone", SHORT_PHONES)):
        take = min(_count(CUSTOMER_RATES[kind], customers.num_rows), len(free))
        chosen, free = free[:take], free[take:]
        index[chosen] = len(values) + rng.integers(0, len(options), take)
        values += list(options)
        counts[kind] = int(take)
    phone = pc.if_else(pa.array(index >= 0), pick(values, np.maximum(index, 0)) if values else customers["phone"],
                       customers["phone"])
    return _replace(customers, "phone", phone), counts
