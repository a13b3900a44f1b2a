"""Mirror mode's extra diff: members at the destination that Lifeline did not put there.

The destination's members are read page by page (MirrorableClient.members()) into a temporary
table `_lifeline_members` (destination id, external id, MD5 of the lower-cased email: no raw email
is staged), then an anti-join in SQL finds the strangers: members matching neither a state row
(by key or destination id) nor a row of the model (by key or email, since the add of that row
adopts them). Strangers are appended to `_lifeline_diff` as op 'stranger' after the removes, so
the engine's remove pages send them with the removals. Python holds one page at a time.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import sqlalchemy as sa

from syncs.config import SyncConfig
from syncs.plan import DIFF_TABLE, Plan, source_sql
from syncs.state import DEPARTED, stage_rows
from syncs.warehouse import STATE_SCHEMA

MEMBERS_TABLE = "_lifeline_members"
STAGE_PAGE = 10_000


def email_hash(email: str | None) -> str | None:
    return hashlib.md5(email.strip().lower().encode()).hexdigest() if email else None  # noqa: S324 - a join key


def stage_members(conn: sa.Connection, members: Iterable[dict]) -> int:
    """Write the destination's members into `_lifeline_members`, STAGE_PAGE at a time; their count."""
    conn.execute(sa.text(f"drop table if exists {MEMBERS_TABLE}"))
    conn.execute(sa.text(f"create temporary table {MEMBERS_TABLE} "
                         "(destination_id varchar, key varchar, email_hash varchar)"))
    page: list[dict] = []
    for member in members:
        page.append({"destination_id": member.get("destination_id"), "key": member.get("key"),
                     "email_hash": email_hash(member.get("email"))})
        if len(page) >= STAGE_PAGE:
            stage_rows(conn, MEMBERS_TABLE, ("destination_id", "key", "email_hash"), page)
            page = []
    stage_rows(conn, MEMBERS_TABLE, ("destination_id", "key", "email_hash"), page)
    return conn.execute(sa.text(f"select count(distinct destination_id) from {MEMBERS_TABLE}")).scalar() or 0


def add_strangers(conn: sa.Connection, sync: SyncConfig, plan: Plan) -> None:
    """Append the strangers to the diff (op 'stranger', numbered after every other row) and count them."""
    source, params = source_sql(sync)
    params["name"] = sync.name
    start = conn.execute(sa.text(f"select coalesce(max(seq), 0) from {DIFF_TABLE}")).scalar()
    conn.execute(sa.text(f"""
        insert into {DIFF_TABLE} (key, row_hash, email, phone, first_name, last_name, payload, destination_id, op, seq)
        with source as ({source}),
        state as (select key, destination_id from {STATE_SCHEMA}.sync_state
                  where sync_name = :name and coalesce(status, '') <> '{DEPARTED}'),
        members as (select destination_id, max(key) as key, max(email_hash) as email_hash
                    from {MEMBERS_TABLE} where destination_id is not null group by destination_id),
        strangers as (
            select m.* from members m
            where not exists (select 1 from state s where s.key = m.key)
              and not exists (select 1 from state s where s.destination_id = m.destination_id)
              and not exists (select 1 from source r where r.key = m.key)
              and not exists (select 1 from source r where md5(lower(trim(r.email))) = m.email_hash)
        )
        select key, null, null, null, null, null, null, destination_id, 'stranger',
               :start + row_number() over (order by destination_id)
        from strangers
    """), dict(params, start=start))
    plan.strangers = conn.execute(sa.text(f"select count(*) from {DIFF_TABLE} where op = 'stranger'")).scalar()
