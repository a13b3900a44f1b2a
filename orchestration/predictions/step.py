"""The prediction step: BG/NBD over `customer_purchase_summary`, written to
`predictions.profile_predictions` (a dbt source read by the lifecycle models).

Only the distinct (frequency, recency_days, t_days) combinations travel to Python (small even at
millions of customers); predictions are joined back to profiles in SQL."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from orchestration.predictions.bgnbd import expected_purchases, fit, p_alive
from syncs.warehouse import Warehouse

MIN_CUSTOMERS = 50
TABLE = "predictions.profile_predictions"


def compute_profile_predictions(warehouse: Warehouse, as_of: datetime, horizon_days: int = 90) -> dict:
    as_of_naive = as_of.astimezone(timezone.utc).replace(tzinfo=None) if as_of.tzinfo else as_of
    fitted_at = datetime.now(timezone.utc).replace(tzinfo=None)
    engine = warehouse.engine()
    try:
        with engine.begin() as conn:
            combos = conn.execute(sa.text(
                "select frequency, recency_days, t_days, count(*) from customer_purchase_summary "
                "where t_days >= recency_days group by 1, 2, 3")).fetchall()
            conn.execute(sa.text("create schema if not exists predictions"))
            conn.execute(sa.text("drop table if exists predictions._combos"))
            conn.execute(sa.text("create table predictions._combos (frequency integer, recency_days double precision, "
                                 "t_days double precision, p_alive double precision, expected_purchases double precision)"))
            n = sum(c[3] for c in combos)
            summary: dict = {"customers": n, "distinct_histories": len(combos), "model": "bgnbd"}
            params = None
            if n >= MIN_CUSTOMERS:
                x = [c[0] for c in combos]
                tx = [c[1] for c in combos]
                T = [c[2] for c in combos]
                try:
                    params = fit(x, tx, T, weights=[c[3] for c in combos])
                except (ValueError, FloatingPointError) as exc:
                    summary["skipped"] = f"fit failed: {exc}"
                if params is not None:
                    alive = p_alive(params, x, tx, T)
                    expected = expected_purchases(params, horizon_days, x, tx, T)
                    conn.execute(sa.text("insert into predictions._combos values (:f, :r, :t, :p, :e)"),
                                 [{"f": a, "r": b, "t": c, "p": float(p), "e": float(e)}
                                  for a, b, c, p, e in zip(x, tx, T, alive, expected)])
                    summary.update(r=params.r, alpha=params.alpha, a=params.a, b=params.b)
            else:
                summary["skipped"] = f"only {n} buyers (need {MIN_CUSTOMERS}): predictions left null"
            p = params
            conn.execute(sa.text("drop table if exists predictions._profile_predictions_next"))
            conn.execute(sa.text(f"""
                create table predictions._profile_predictions_next as
                select s.profile_id, c.p_alive, c.expected_purchases as expected_purchases_90d,
                       s.frequency, s.recency_days, s.t_days, cast('bgnbd' as varchar) as model,
                       cast(:r as double precision) as r, cast(:alpha as double precision) as alpha,
                       cast(:a as double precision) as a, cast(:b as double precision) as b,
                       cast(:as_of as timestamp) as as_of, cast(:fitted_at as timestamp) as fitted_at
                from customer_purchase_summary s
                left join predictions._combos c
                  on c.frequency = s.frequency and c.recency_days = s.recency_days and c.t_days = s.t_days"""),
                {"r": p.r if p else None, "alpha": p.alpha if p else None, "a": p.a if p else None,
                 "b": p.b if p else None, "as_of": as_of_naive, "fitted_at": fitted_at})
            conn.execute(sa.text(f"drop table if exists {TABLE}"))
            conn.execute(sa.text(f"alter table predictions._profile_predictions_next rename to profile_predictions"))
            conn.execute(sa.text("drop table predictions._combos"))
    finally:
        engine.dispose()
    return summary
