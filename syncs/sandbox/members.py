"""Audience membership rows for the platforms that hold plain member sets (Mailchimp, Braze, Meta,
Google, TikTok): `members(platform, audience, member_key, data)` in the shared store."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from syncs.sandbox.common import dumps, now_iso


def upsert(db: sqlite3.Connection, platform: str, audience: str, rows: Iterable[tuple[str, dict]]) -> None:
    now = now_iso()
    db.executemany("insert or replace into members (platform, audience, member_key, data, updated) "
                   "values (?,?,?,?,?)", [(platform, audience, key, dumps(data), now) for key, data in rows])


def remove(db: sqlite3.Connection, platform: str, audience: str, keys: Iterable[str]) -> None:
    db.executemany("delete from members where platform = ? and audience = ? and member_key = ?",
                   [(platform, audience, k) for k in keys])


def clear(db: sqlite3.Connection, platform: str, audience: str) -> None:
    db.execute("delete from members where platform = ? and audience = ?", (platform, audience))


def get(db: sqlite3.Connection, platform: str, audience: str, key: str) -> dict | None:
    row = db.execute("select data from members where platform = ? and audience = ? and member_key = ?",
                     (platform, audience, key)).fetchone()
    return json.loads(row[0]) if row else None


def get_many(db: sqlite3.Connection, platform: str, audience: str, keys: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i in range(0, len(keys), 900):
        part = keys[i:i + 900]
        out.update((k, json.loads(d)) for k, d in db.execute(
            f"select member_key, data from members where platform = ? and audience = ? and member_key in "
            f"({','.join('?' * len(part))})", [platform, audience, *part]))
    return out


def page(db: sqlite3.Connection, platform: str, audience: str, offset: int, count: int) -> list[tuple[str, dict]]:
    return [(k, json.loads(d)) for k, d in db.execute(
        "select member_key, data from members where platform = ? and audience = ? order by member_key "
        "limit ? offset ?", (platform, audience, count, offset))]


def counts(db: sqlite3.Connection, platform: str) -> dict[str, int]:
    return {a: n for a, n in db.execute("select audience, count(*) from members where platform = ? "
                                        "group by audience order by audience", (platform,))}


def keys(db: sqlite3.Connection, platform: str, audience: str) -> list[str]:
    return [k for (k,) in db.execute("select member_key from members where platform = ? and audience = ? "
                                     "order by member_key", (platform, audience))]


def ensure_audience(db: sqlite3.Connection, platform: str, audience_id: str, data: dict) -> dict:
    row = db.execute("select data from audiences where platform = ? and id = ?", (platform, audience_id)).fetchone()
    if row:
        return json.loads(row[0])
    db.execute("insert into audiences (platform, id, data) values (?,?,?)", (platform, audience_id, dumps(data)))
    return data


def audiences(db: sqlite3.Connection, platform: str) -> dict[str, dict]:
    return {i: json.loads(d) for i, d in db.execute("select id, data from audiences where platform = ? order by id",
                                                    (platform,))}
