"""The `lifeline_state.dq_results` table: one row per expectation per suite run."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import sqlalchemy as sa

from syncs.warehouse import STATE_SCHEMA

RESULTS_TABLE = "dq_results"


@dataclass(frozen=True)
class ResultRow:
    run_id: str
    suite: str
    asset: str
    expectation: str
    severity: str
    success: bool
    observed_value: str | None
    checked_at: datetime


def _table() -> sa.Table:
    return sa.Table(
        RESULTS_TABLE, sa.MetaData(),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("suite", sa.String, nullable=False),
        sa.Column("asset", sa.String, nullable=False),
        sa.Column("expectation", sa.String, nullable=False),
        sa.Column("severity", sa.String, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("observed_value", sa.Text),
        sa.Column("checked_at", sa.DateTime, nullable=False),
        schema=STATE_SCHEMA,
    )


def ensure_results_table(connection: sa.Connection) -> None:
    # Plain DDL, not Table.create(checkfirst=True): duckdb-engine 0.17's reflection queries
    # fail under SQLAlchemy 2.1, so "does it exist" is left to the database.
    connection.execute(sa.text(f"create schema if not exists {STATE_SCHEMA}"))
    connection.execute(sa.text(
        f"create table if not exists {STATE_SCHEMA}.{RESULTS_TABLE} (run_id varchar not null,"
        " suite varchar not null, asset varchar not null, expectation varchar not null,"
        " severity varchar not null, success boolean not null, observed_value text,"
        " checked_at timestamp not null)"))


def write_results(engine: sa.Engine, rows: Iterable[ResultRow]) -> None:
    rows = list(rows)
    with engine.begin() as connection:
        ensure_results_table(connection)
        if rows:
            connection.execute(_table().insert(), [row.__dict__ for row in rows])


def last_accepted_value(engine: sa.Engine, suite: str, expectation: str) -> str | None:
    """observed_value of the latest passing `expectation` of `suite`, or None (no such run)."""
    table = _table()
    with engine.begin() as connection:
        ensure_results_table(connection)
        query = (sa.select(table.c.observed_value)
                 .where(table.c.suite == suite, table.c.expectation == expectation, table.c.success.is_(True))
                 .order_by(table.c.checked_at.desc()).limit(1))
        return connection.execute(query).scalar_one_or_none()
