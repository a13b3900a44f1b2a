"""Audience tables written directly with SQL (no dbt), shared by the sync tests."""
from __future__ import annotations

import json

import sqlalchemy as sa


def set_audience(warehouse, members: list[dict]) -> None:
    engine = warehouse.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("drop table if exists audience_members"))
        conn.execute(sa.text("create table audience_members (audience varchar, profile_id varchar, channel varchar, "
                             "entered_at timestamp, email varchar, phone varchar, is_holdout boolean, payload varchar, "
                             "first_name varchar, last_name varchar)"))
        rows = [dict({"audience": "cart_abandonment", "channel": "email", "phone": None, "is_holdout": False,
                      "payload": json.dumps({"step": 1}), "first_name": "A", "last_name": None}, **m) for m in members]
        if rows and conn.dialect.name == "duckdb":  # executemany on DuckDB takes ~0.7 ms a row
            import pyarrow as pa

            columns = ("audience", "profile_id", "channel", "email", "phone", "is_holdout", "payload", "first_name",
                       "last_name")
            table = pa.table({c: [r[c] for r in rows] for c in columns})
            raw = conn.connection.driver_connection
            raw.register("_audience_rows", table)
            conn.execute(sa.text("insert into audience_members select audience, profile_id, channel, null, email, "
                                 "phone, is_holdout, payload, first_name, last_name from _audience_rows"))
            raw.unregister("_audience_rows")
        elif rows:
            conn.execute(sa.text("insert into audience_members values (:audience, :profile_id, :channel, null, :email, "
                                 ":phone, :is_holdout, :payload, :first_name, :last_name)"), rows)
    engine.dispose()


def people(n: int, start: int = 0, **extra) -> list[dict]:
    return [dict({"profile_id": f"p_{i:05d}", "email": f"person{i}@example.com"}, **extra) for i in range(start, start + n)]
