"""Warehouse step: fit BG/NBD on `customer_purchase_summary` and write `predictions.profile_predictions`.

Only distinct (frequency, recency_days, t_days) combinations cross into Python (aggregated in SQL,
with a customer count as weight), so the step stays small at millions of profiles. The per-combo
predictions go to a temporary table, and the output is built in SQL by joining them back to the
summary, inside one transaction that drops and re-creates the table (readers see the old or the
new table, never a half-written one).

Guard: with fewer than ``min_customers`` valid customers, no repeat buyer, or a failed fit, every
profile still gets a row, with null predictions and null parameters; the returned summary says why.
Rows whose inputs are unusable (null, negative, or recency > t) also get null predictions.
Time unit: days, so alpha is in days and the horizon is ``horizon_days``. ``t_days`` is as of the
dbt build (var ``as_of``); ``as_of`` here is recorded on each row and should be that same value.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict
from datetime import datetime, timezone
from contextlib import contextmanager
from typing import Any, Iterator, Protocol

import duckdb
import numpy as np
import pyarrow as pa

from orchestration.predictions import bgnbd
from syncs.warehouse import Warehouse

SCHEMA = "predictions"
TABLE = "profile_predictions"
SOURCE = "customer_purchase_summary"
MODEL = "bgnbd"
MIN_CUSTOMERS = 50
_COMBOS = "_lifeline_prediction_combos"
_VALID = "frequency >= 0 and recency_days >= 0 and t_days >= recency_days"


class PredictionError(RuntimeError):
    """The step cannot run (e.g. the source model is missing); the message says what to do."""


class _Session(Protocol):
    def fetch(self, sql: str) -> list[tuple]: ...
    def execute(self, sql: str) -> None: ...
    def load_combos(self, columns: dict[str, np.ndarray]) -> None: ...


class _DuckSession:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def fetch(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def load_combos(self, columns: dict[str, np.ndarray]) -> None:
        self.con.register("_lifeline_combos_in", pa.table(columns))
        try:
            self.con.execute(f"create temporary table {_COMBOS} as select * from _lifeline_combos_in")
        finally:
            self.con.unregister("_lifeline_combos_in")


class _PgSession:
    def __init__(self, cursor: Any) -> None:
        self.cur = cursor

    def fetch(self, sql: str) -> list[tuple]:
        self.cur.execute(sql)
        return self.cur.fetchall()

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def load_combos(self, columns: dict[str, np.ndarray]) -> None:
        types = {"frequency": "bigint"}
        ddl = ", ".join(f"{name} {types.get(name, 'double precision')}" for name in columns)
        self.cur.execute(f"create temporary table {_COMBOS} ({ddl}) on commit drop")
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in zip(*(values.tolist() for values in columns.values())):
            writer.writerow(["\\N" if v is None or v != v else repr(v) for v in row])  # v != v: NaN
        buf.seek(0)
        self.cur.copy_expert(f"copy {_COMBOS} ({', '.join(columns)}) from stdin with (format csv, null '\\N')", buf)


@contextmanager
def _session(warehouse: Warehouse) -> Iterator[_Session]:
    """One transaction on the warehouse: committed when the block succeeds, rolled back otherwise."""
    if warehouse.kind == "duckdb":
        con = duckdb.connect(str(warehouse.duckdb_path))
        try:
            con.execute("begin transaction")
            yield _DuckSession(con)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            con.close()
        return
    engine = warehouse.engine()
    raw = engine.raw_connection()
    try:
        yield _PgSession(raw.cursor())
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
        engine.dispose()


def _sql_literal(value: float | datetime | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return f"cast('{value.isoformat(sep=' ')}' as timestamp)"
    return f"cast({float(value)!r} as double precision)"


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _source_exists(db: _Session, schema: str) -> bool:
    return bool(db.fetch("select 1 from information_schema.tables "
                         f"where table_schema = '{schema}' and table_name = '{SOURCE}'"))


def _fit_combos(combos: list[tuple], min_customers: int) -> tuple[bgnbd.BGNBDParams | None, str | None]:
    if not combos:
        return None, "no customer with a completed purchase"
    x, t_x, big_t, n = (np.array(col, dtype=float) for col in zip(*combos))
    if n.sum() < min_customers:
        return None, f"only {int(n.sum())} customers with valid purchase history (need {min_customers})"
    if not np.any(x > 0):
        return None, "no customer has a repeat purchase, so purchase cadence cannot be estimated"
    try:
        return bgnbd.fit(x, t_x, big_t, weights=n), None
    except (bgnbd.BGNBDFitError, ValueError, FloatingPointError) as exc:
        return None, f"BG/NBD fit failed: {exc}"


def compute_profile_predictions(warehouse: Warehouse, as_of: datetime, horizon_days: int = 90,
                                min_customers: int = MIN_CUSTOMERS) -> dict[str, Any]:
    """Fit BG/NBD (in days) and (re)write ``predictions.profile_predictions``; returns a summary.

    Columns: profile_id, p_alive, expected_purchases_<horizon_days>d, frequency, recency_days,
    t_days, model, r, alpha, a, b, as_of, fitted_at.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be a positive number of days, got {horizon_days}.")
    started = time.perf_counter()
    source = f"{warehouse.marts_schema}.{SOURCE}"
    expected_col = f"expected_purchases_{horizon_days}d"
    with _session(warehouse) as db:
        if not _source_exists(db, warehouse.marts_schema):
            raise PredictionError(f"{source} does not exist: run `lifeline build` first, so dbt creates it.")
        combos = db.fetch(f"select frequency, recency_days, t_days, count(*) from {source} "
                          f"where {_VALID} group by frequency, recency_days, t_days")
        params, reason = _fit_combos(combos, min_customers)
        p_alive = expected = None
        if params is not None:
            x, t_x, big_t = (np.array(col, dtype=float) for col in list(zip(*combos))[:3])
            p_alive = bgnbd.p_alive(params, x, t_x, big_t)
            expected = bgnbd.expected_purchases(params, float(horizon_days), x, t_x, big_t)
            if not (np.all(np.isfinite(p_alive)) and np.all(np.isfinite(expected))):
                params, reason, p_alive, expected = None, "BG/NBD predictions were not finite", None, None
        if params is not None:
            cols = list(zip(*combos))
            db.load_combos({"frequency": np.array(cols[0], dtype=np.int64),
                            "recency_days": np.array(cols[1], dtype=float),
                            "t_days": np.array(cols[2], dtype=float),
                            "p_alive": p_alive, "expected": expected})
            joined = (f"left join {_COMBOS} c on c.frequency = s.frequency "
                      "and c.recency_days = s.recency_days and c.t_days = s.t_days")
            p_col, e_col = "c.p_alive", "c.expected"
        else:
            joined, p_col, e_col = "", "cast(null as double precision)", "cast(null as double precision)"
        fitted_at = datetime.now(timezone.utc).replace(tzinfo=None)
        values = asdict(params) if params is not None else {}
        db.execute(f"create schema if not exists {SCHEMA}")
        db.execute(f"drop table if exists {SCHEMA}.{TABLE}")
        db.execute(
            f"create table {SCHEMA}.{TABLE} as select s.profile_id, "
            f"cast({p_col} as double precision) as p_alive, cast({e_col} as double precision) as {expected_col}, "
            "s.frequency, s.recency_days, s.t_days, "
            f"cast('{MODEL}' as text) as model, "
            + ", ".join(f"{_sql_literal(values.get(name))} as {name}" for name in ("r", "alpha", "a", "b"))
            + f", {_sql_literal(_naive_utc(as_of))} as as_of, {_sql_literal(fitted_at)} as fitted_at "
            f"from {source} s {joined}")
        rows = db.fetch(f"select count(*), count(p_alive) from {SCHEMA}.{TABLE}")[0]
    return {
        "status": "fitted" if params is not None else "skipped",
        "reason": reason,
        "table": f"{SCHEMA}.{TABLE}",
        "rows": int(rows[0]),
        "rows_with_predictions": int(rows[1]),
        "customers_fitted": int(sum(c[3] for c in combos)),
        "combos": len(combos),
        "params": None if params is None else {k: values[k] for k in ("r", "alpha", "a", "b")},
        "log_likelihood": None if params is None else params.log_likelihood,
        "horizon_days": horizon_days,
        "as_of": _naive_utc(as_of).isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }
