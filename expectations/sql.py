"""The SQL the suites validate, written once for DuckDB and PostgreSQL.

Everything here runs inside the warehouse (GE table assets, views in the ``lifeline_dq`` schema
and ``UnexpectedRowsExpectation`` queries); nothing pulls a table into Python. The few dialect differences (JSON validity) are
isolated in :func:`prepare_scratch_schema` and :func:`json_valid_sql`.
"""
from __future__ import annotations

import sqlalchemy as sa

from syncs.warehouse import Warehouse

DQ_SCHEMA = "lifeline_dq"

# ISO-8601 date or timestamp, optional fraction and offset. No "{n}" quantifiers: GE formats
# UnexpectedRowsExpectation queries with str.format ({batch}), so braces would be read as fields.
_D = "[0-9]"
ISO_TIMESTAMP_RE = (
    f"^{_D}{_D}{_D}{_D}-{_D}{_D}-{_D}{_D}"
    f"([T ]{_D}{_D}:{_D}{_D}(:{_D}{_D}([.][0-9]+)?)?)?"
    f"( ?(Z|[+-]{_D}{_D}(:?{_D}{_D})?))?$"
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str | None, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def as_text(column: str) -> str:
    return f"cast({quote_ident(column)} as varchar)"


def is_iso_timestamp(column: str) -> str:
    """True when the column (of any type) reads as an ISO-8601 timestamp. `~` is a regex match
    in both warehouses (DuckDB: full match, PostgreSQL: search; the pattern is anchored)."""
    return f"({as_text(column)} ~ '{ISO_TIMESTAMP_RE}')"


def share_above_query(bad_predicate: str, max_share: float) -> str:
    """An unexpected-rows query: one row (bad_rows, total_rows, bad_share) when the share of rows
    matching `bad_predicate` exceeds `max_share`, none otherwise (an empty table passes)."""
    return (
        "select bad_rows, total_rows, bad_share from ("
        f" select sum(case when {bad_predicate} then 1 else 0 end) as bad_rows, count(*) as total_rows,"
        f" avg(case when {bad_predicate} then 1.0 else 0.0 end) as bad_share from {{batch}}"
        f") s where bad_share > {max_share!r}"
    )


def json_valid_sql(warehouse: Warehouse, expression: str) -> str:
    """True when `expression` is null or parses as JSON."""
    if warehouse.kind == "duckdb":
        return f"({expression} is null or coalesce(json_valid({expression}), false))"
    return f"({expression} is null or {DQ_SCHEMA}.is_json(cast({expression} as text)))"


def prepare_scratch_schema(connection: sa.Connection, warehouse: Warehouse) -> None:
    """The `lifeline_dq` schema; on PostgreSQL also `is_json(text)` (PostgreSQL 15 has no safe
    JSON cast: a plain `::json` aborts the whole query on the first bad row)."""
    connection.execute(sa.text(f"create schema if not exists {DQ_SCHEMA}"))
    if warehouse.kind == "postgres":
        connection.execute(sa.text(
            f"create or replace function {DQ_SCHEMA}.is_json(value text) returns boolean "
            "language plpgsql immutable as $$ begin perform value::json; return true; "
            "exception when others then return false; end $$"
        ))


CHANNEL_FIELDS: dict[str, tuple[str, str]] = {
    # channel -> (consent column on profiles, contact column on audience_members)
    "email": ("email_consent", "email"),
    "sms": ("sms_consent", "phone"),
}
# channel ads (ad platforms): every identifier a row carries has consent on its own channel, and it carries one
ADS_CONSENT = ("coalesce((m.email is null or p.email_consent) and (m.phone is null or p.sms_consent)"
               " and (m.email is not null or m.phone is not null), false)")


def audience_query(warehouse: Warehouse, audience: str, channel: str, *,
                   members_table: str = "audience_members", profiles_table: str = "profiles") -> str:
    """Synced members of one audience and channel (holdout excluded), with the profile's consent
    for that channel. A channel without a consent rule has no consent (fails closed)."""
    schema = warehouse.marts_schema
    consent_column, contact_column = CHANNEL_FIELDS.get(channel, (None, None))
    has_consent = f"coalesce(p.{quote_ident(consent_column)}, false)" if consent_column else "false"
    contact = f"m.{quote_ident(contact_column)}" if contact_column else "cast(null as varchar)"
    if channel == "ads":
        has_consent, contact = ADS_CONSENT, "coalesce(m.email, m.phone)"
    return (
        f"select m.profile_id, {contact} as contact, {has_consent} as has_consent,"
        f" {json_valid_sql(warehouse, 'm.payload')} as payload_is_json"
        f" from {qualified(schema, members_table)} m"
        f" left join {qualified(schema, profiles_table)} p on p.profile_id = m.profile_id"
        f" where m.audience = {quote_literal(audience)} and m.channel = {quote_literal(channel)}"
        " and not coalesce(m.is_holdout, false)"
    )


def audience_view(engine: sa.Engine, warehouse: Warehouse, suite_name: str, query: str) -> str:
    """(Re)create the view `lifeline_dq.<suite>` over an audience query; returns the view's name.
    A view, so that GE validates it as a table asset inside the warehouse."""
    name = "aud__" + "".join(c if c.isalnum() else "_" for c in suite_name.removeprefix("audience."))
    with engine.begin() as connection:
        prepare_scratch_schema(connection, warehouse)
        connection.execute(sa.text(f"drop view if exists {qualified(DQ_SCHEMA, name)}"))
        connection.execute(sa.text(f"create view {qualified(DQ_SCHEMA, name)} as {query}"))
    return name
