"""A synthetic `audience_members` table for the sync and diff benchmarks, built by SQL in the
warehouse (generate_series), never through Python lists, so 10M rows cost seconds.

Shape: the columns of the marts' audience_members that syncs/plan.py source_sql reads (audience,
profile_id, channel, entered_at, email, phone, is_holdout, payload, first_name, last_name).
`members` rows are the synced audience, plus 5% holdout rows (never synced) and as many rows of another audience (filtered out by the sync), so the
source filter does real work. Profile ids have the shape dbt gives them (identity_map: `p_` and 20
hex digits of an md5), so they come in no order: the sync's state index (lifeline_state.sync_state's
primary key) sees the random inserts a real audience gives it, not the ascending keys of a counter
(`p000000001`..., which made each 10,000-row page's state write about half as costly). Member `i`
is `user<i>@example.com` (member_number); holdout rows' ids start `h_`.
The same SQL runs on DuckDB and PostgreSQL.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

AUDIENCE = "bench"
CHANNEL = "email"
TABLE = "audience_members"


@dataclass(frozen=True)
class Change:
    """A 1% change split in thirds: members removed, members whose payload changed, new members."""

    removes: int
    updates: int
    adds: int

    @property
    def total(self) -> int:
        return self.removes + self.updates + self.adds


def _rows_sql(first: int, last: int, prefix: str, audience: str, holdout: bool) -> str:
    pid = f"'{prefix}_' || substr(md5('{prefix}' || cast(i as varchar)), 1, 20)"
    return f"""
        select '{audience}' as audience, {pid} as profile_id, '{CHANNEL}' as channel,
               timestamp '2026-01-01 00:00:00' + (i % 86400) * interval '1 second' as entered_at,
               'user' || cast(i as varchar) || '@example.com' as email,
               '+1555' || lpad(cast(i % 10000000 as varchar), 7, '0') as phone,
               {'true' if holdout else 'false'} as is_holdout,
               '{{"tier":"' || (case when i % 3 = 0 then 'gold' else 'silver' end) || '","score":'
                   || cast(i % 1000 as varchar) || '}}' as payload,
               'First' || cast(i % 5000 as varchar) as first_name,
               'Last' || cast(i % 7000 as varchar) as last_name
        from generate_series({first}, {last}) as t(i)
        order by md5('row' || cast(i as varchar))"""


def member_number(email: str = "email") -> str:
    """SQL: the number `i` of the member whose email is `email` (`user<i>@example.com`)."""
    return f"cast(replace(split_part({email}, '@', 1), 'user', '') as bigint)"


def create_audience(conn: sa.Connection, members: int, table: str = TABLE) -> None:
    """(Re)create `table` with `members` synced rows plus holdout and other-audience rows."""
    extra = max(1, members // 20)
    conn.execute(sa.text(f"drop table if exists {table}"))
    conn.execute(sa.text(f"create table {table} as {_rows_sql(1, members, 'p', AUDIENCE, False)}"))
    conn.execute(sa.text(f"insert into {table} {_rows_sql(1, extra, 'h', AUDIENCE, True)}"))
    conn.execute(sa.text(f"insert into {table} {_rows_sql(1, extra, 'p', 'other', False)}"))
    conn.commit()


def change_for(members: int, share: float = 0.01) -> Change:
    third = max(1, int(members * share) // 3)
    return Change(removes=third, updates=third, adds=third)


def apply_change(conn: sa.Connection, members: int, change: Change, table: str = TABLE, version: int = 2) -> None:
    """Remove, update and add `change` rows of the synced audience, spread evenly over the keys.
    `version` goes into the updated payloads, so applying a change twice updates rows again."""
    step = max(1, members // max(change.removes, 1))
    num = member_number()
    member = f"audience = '{AUDIENCE}' and not is_holdout"
    conn.execute(sa.text(f"delete from {table} where {member} and {num} % {step} = 0 "
                         f"and {num} <= {step * change.removes}"))
    conn.execute(sa.text(f"update {table} set payload = :payload "
                         f"where {member} and {num} % {step} = 1 and {num} <= {step * change.updates}"),
                 {"payload": f'{{"tier":"platinum","v":{version}}}'})
    conn.execute(sa.text(f"insert into {table} "
                         f"{_rows_sql(members + 1 + (version - 2) * change.adds, members + (version - 1) * change.adds, 'p', AUDIENCE, False)}"))
    conn.commit()


def synced_keys(conn: sa.Connection, table: str = TABLE) -> set[str]:
    """Profile ids the sync should hold in the destination (for the zero-lost-rows check)."""
    return {k for (k,) in conn.execute(sa.text(
        f"select profile_id from {table} where audience = '{AUDIENCE}' and channel = '{CHANNEL}' "
        f"and not is_holdout"))}
