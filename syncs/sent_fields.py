"""Which payload fields each row last carried to the destination, and the clearing of the ones that vanished.

Design: `lifeline_state.sync_state.sent_fields` holds, per row, the sorted JSON list of the field
names (payload keys and `fields:` attributes of syncs.yml, without the `lifeline_` prefix) the
destination acknowledged last. Per row, not once per sync: the payload is JSON built by the model
and its keys may differ between rows (audiences, steps), so a per-sync field list could not say
which row held what. It costs one short text per row, written in the same statement as row_hash.

A later run re-sends a changed row with every field it carried before and no longer carries as
an explicit null (upsert mode), which the destinations already turn into a clear: Braze gets the
attribute as `null`, Klaviyo lists it in `meta.patch_properties.unset` of the same bulk import.
Which rows change is decided by SQL in the warehouse (plan.build_diff): a field gone from the
payload changes the payload text, and the `fields:` mapping is part of row_hash, so a mapping
change re-sends every row even when the model rows did not change. Mailchimp (membership only,
merge fields FNAME/LNAME, never the payload) and the ad platforms (hashed identifiers only) send
no payload fields, so there is nothing to clear; webhook and file rows are not rewritten.

Upgrading: state written before this column existed has sent_fields null. `backfill` fills it,
once, for rows whose stored row_hash still equals the model's (what was sent is then exactly
what the model holds now), streaming in pages; nothing is re-sent. A row already changed at that
point has an unknown past: it is re-sent as before, without clears.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import orjson
import sqlalchemy as sa

from syncs.config import SyncConfig
from syncs.destinations.base import payload_fields
from syncs.state import stage_rows
from syncs.warehouse import STATE_SCHEMA

MAPPED_PREFIX = "field__"  # diff/source column of a `fields:` attribute
BACKFILL_TABLE = "_lifeline_backfill"
FILLED_TABLE = "_lifeline_filled"


def mapped_column(attribute: str) -> str:
    return f"{MAPPED_PREFIX}{attribute}"


def mapped_columns(sync: SyncConfig) -> tuple[str, ...]:
    return tuple(mapped_column(a) for a in sorted(sync.fields or {}))


def encode(names: Iterable[str]) -> str:
    return orjson.dumps(sorted(set(names))).decode()


def decode(text: str | None) -> list[str] | None:
    """The stored field list; None when unknown (state from before sent_fields, or unreadable)."""
    if not text:
        return None
    try:
        names = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else None


def _json_value(value: object) -> object:
    return orjson.loads(orjson.dumps(value, default=str))


def carried(row: Mapping, mapping: Mapping[str, str] | None) -> str:
    """The encoded list of fields the row carries: its payload's keys and the mapped attributes."""
    return encode([*(payload_fields(row) or ()), *(mapping or ())])


def outgoing(row: Mapping, mapping: Mapping[str, str] | None, clear_vanished: bool) -> dict:
    """The row as sent: payload = the model's payload plus the mapped columns (and, when
    `clear_vanished`, every field of the row's stored `sent_fields` no longer carried, as null);
    `sent_fields` = the fields carried now, for the state once the destination acknowledged."""
    out = {k: v for k, v in row.items() if not k.startswith(MAPPED_PREFIX)}
    payload = payload_fields(row)
    fields = dict(payload or {})
    for attribute in sorted(mapping or {}):
        fields[attribute] = _json_value(row.get(mapped_column(attribute)))
    out["sent_fields"] = encode(fields)
    vanished = sorted(set(decode(row.get("sent_fields")) or ()) - set(fields)) if clear_vanished else []
    fields.update({name: None for name in vanished})
    if mapping or vanished:
        out["payload"] = orjson.dumps(fields).decode()
    return out


def shaped(batches: Iterable[list[dict]], sync: SyncConfig) -> Iterator[list[dict]]:
    """Each page of diff rows as `outgoing` rows (vanished fields cleared in upsert mode only)."""
    for batch in batches:
        yield [outgoing(row, sync.fields, sync.mode == "upsert") for row in batch]


def backfill(conn: sa.Connection, sync: SyncConfig, source: str, params: dict, page_size: int = 10_000) -> int:
    """Fill sent_fields of the sync's unchanged rows that have none (state written before the
    column existed), page by page, committing each page. Returns the rows filled."""
    params = dict(params, name=sync.name)
    unknown = conn.execute(sa.text(f"select count(*) from {STATE_SCHEMA}.sync_state "
                                   "where sync_name = :name and sent_fields is null"), params).scalar()
    if not unknown:
        return 0
    conn.execute(sa.text(f"drop table if exists {BACKFILL_TABLE}"))
    conn.execute(sa.text(f"""
        create temporary table {BACKFILL_TABLE} as
        with source as ({source})
        select source.key, source.payload, row_number() over (order by source.key) as seq
        from source join {STATE_SCHEMA}.sync_state s on s.sync_name = :name and s.key = source.key
        where s.sent_fields is null and s.row_hash = source.row_hash"""), params)
    if conn.dialect.name == "postgresql":  # pages are seq ranges: without an index each would scan it all
        conn.execute(sa.text(f"create index on {BACKFILL_TABLE} (seq)"))
    total = conn.execute(sa.text(f"select count(*) from {BACKFILL_TABLE}")).scalar() or 0
    conn.execute(sa.text(f"create temporary table if not exists {FILLED_TABLE} (key varchar, sent_fields varchar)"))
    for start in range(1, total + 1, page_size):
        rows = conn.execute(sa.text(f"select key, payload from {BACKFILL_TABLE} where seq between :lo and :hi"),
                            {"lo": start, "hi": start + page_size - 1}).fetchall()
        conn.execute(sa.text(f"delete from {FILLED_TABLE}"))
        stage_rows(conn, FILLED_TABLE, ("key", "sent_fields"),
                   [{"key": key, "sent_fields": carried({"payload": payload}, sync.fields)} for key, payload in rows])
        conn.execute(sa.text(f"""
            update {STATE_SCHEMA}.sync_state set sent_fields = f.sent_fields from {FILLED_TABLE} f
            where {STATE_SCHEMA}.sync_state.sync_name = :name and {STATE_SCHEMA}.sync_state.key = f.key
              and {STATE_SCHEMA}.sync_state.sent_fields is null"""), {"name": sync.name})
        conn.commit()
    conn.execute(sa.text(f"drop table if exists {BACKFILL_TABLE}"))
    conn.commit()
    return total
