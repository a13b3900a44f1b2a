"""The register of erased people: hashes of their identifiers, never the identifiers themselves.

`lifeline forget` writes one row per identifier of an erased person to
`lifeline_state.erased_identifiers` (SHA-256 of "<type>:<normalised value>") and one row per request
to `lifeline_state.erasure_requests`. `lifeline load` reads the hashes and drops every incoming row
that carries one of them, so re-loading the same raw files does not bring the person back.

Normalisation (the same in Python and in the load's DuckDB SQL): emails trimmed and lower-cased;
user ids, customer ids, anonymous ids, order ids and profile ids trimmed; phones reduced to their
digits (both the E.164 form's digits and the digits of the forms the raw files held are stored).
"""
from __future__ import annotations

import hashlib
import re

from syncs.warehouse import STATE_SCHEMA

REQUESTS = f"{STATE_SCHEMA}.erasure_requests"
IDENTIFIERS = f"{STATE_SCHEMA}.erased_identifiers"
DDL = [
    f"create schema if not exists {STATE_SCHEMA}",
    f"""create table if not exists {REQUESTS} (
        request_id varchar primary key, subject_type varchar not null, subject_hash varchar not null,
        requested_at timestamp not null, completed_at timestamp, status varchar not null,
        identifiers integer, rows_deleted integer, destinations varchar)""",  # destinations: JSON per sync
    f"""create table if not exists {IDENTIFIERS} (
        identifier_hash varchar primary key, identifier_type varchar not null, request_id varchar not null,
        erased_at timestamp not null)""",
]
TYPES = ("email", "phone", "user_id", "anonymous_id", "order_id", "profile_id")

# Per raw table: (identifier type, SQL giving the normalised value of one of its columns).
_DIGITS = "regexp_replace({c}, '[^0-9]', '', 'g')"
LOAD_KEYS: dict[str, list[tuple[str, str]]] = {
    "events": [("email", "lower(trim(email))"), ("phone", _DIGITS.format(c="phone")), ("user_id", "trim(user_id)"),
               ("anonymous_id", "trim(anonymous_id)")],
    "customers": [("user_id", "trim(customer_id)"), ("email", "lower(trim(email))"),
                  ("phone", _DIGITS.format(c="phone"))],
    "orders": [("order_id", "trim(order_id)"), ("user_id", "trim(customer_id)"), ("email", "lower(trim(email))"),
               ("phone", _DIGITS.format(c="phone")), ("anonymous_id", "trim(anonymous_id)")],
    "order_items": [("order_id", "trim(order_id)")],
    "message_events": [("email", "lower(trim(recipient))"), ("phone", _DIGITS.format(c="recipient")),
                       ("profile_id", "trim(external_id)")],
}


def normalise(identifier_type: str, value: str) -> str:
    if identifier_type == "email":
        return value.strip().lower()
    if identifier_type == "phone":
        return re.sub(r"[^0-9]", "", value)
    return value.strip()


def identifier_hash(identifier_type: str, value: str) -> str:
    """SHA-256 hex of "<type>:<normalised value>" (what the register stores and the load compares)."""
    if identifier_type not in TYPES:
        raise ValueError(f"unknown identifier type {identifier_type!r} (one of {', '.join(TYPES)})")
    return hashlib.sha256(f"{identifier_type}:{normalise(identifier_type, value)}".encode()).hexdigest()


def register_exists_sql() -> str:
    return (f"select count(*) from information_schema.tables where table_schema = '{STATE_SCHEMA}' "
            f"and table_name = 'erased_identifiers'")


def read_hashes(cursor) -> list[str]:
    """Every erased identifier hash, through a DB-API cursor (or a DuckDB connection); [] without a register."""
    cursor.execute(register_exists_sql())
    if not cursor.fetchone()[0]:
        return []
    cursor.execute(f"select identifier_hash from {IDENTIFIERS}")
    return [row[0] for row in cursor.fetchall()]


def load_filter(table: str, relation: str, hashes_relation: str) -> str | None:
    """DuckDB SQL keeping the rows of `relation` (contract columns, text) that carry no erased
    identifier; None for a table without identifiers (products)."""
    keys = LOAD_KEYS.get(table)
    if not keys:
        return None
    hashed = ", ".join(f"sha256('{kind}:' || {expr})" for kind, expr in keys)
    return (f"select * from ({relation}) as incoming where not exists "
            f"(select 1 from {hashes_relation} as erased where erased.h in ({hashed}))")
