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
        if members:
            conn.execute(sa.text("insert into audience_members values (:audience, :profile_id, :channel, null, :email, "
                                 ":phone, :is_holdout, :payload, :first_name, null)"),
                         [dict({"audience": "cart_abandonment", "channel": "email", "phone": None, "is_holdout": False,
                                "payload": json.dumps({"step": 1}), "first_name": "A"}, **m) for m in members])
    engine.dispose()


def people(n: int, start: int = 0, **extra) -> list[dict]:
    return [dict({"profile_id": f"p_{i:05d}", "email": f"person{i}@example.com"}, **extra) for i in range(start, start + n)]
