"""BG/NBD: the published CDNOW fit (Fader, Hardie & Lee 2005) and the model's qualitative behaviour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestration.predictions import bgnbd

CALIBRATION_END = pd.Timestamp("1997-09-30")
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def cdnow_calibration_summary(path: Path) -> pd.DataFrame:
    """frequency = repeat purchase days, recency and T in weeks from the first purchase (FHL 2005)."""
    log = pd.read_csv(path, sep=r"\s+", header=None, names=["customer", "id2", "date", "cds", "dollars"],
                      dtype={"date": str})
    log["date"] = pd.to_datetime(log["date"], format="%Y%m%d")
    first = log.groupby("customer")["date"].min()
    days = log[log["date"] <= CALIBRATION_END].drop_duplicates(["customer", "date"])
    per = days.groupby("customer")["date"].agg(["count", "max"])
    week = pd.Timedelta(weeks=1)
    return pd.DataFrame({"frequency": per["count"] - 1, "recency": (per["max"] - first) / week,
                         "T": (CALIBRATION_END - first) / week})


@pytest.fixture
def cdnow_fit(shared_datasets: Path) -> tuple[bgnbd.BGNBDParams, pd.DataFrame]:
    datasets = shared_datasets  # conftest: ../shared/datasets or LIFELINE_DATASETS_DIR; fails in CI
    summary = cdnow_calibration_summary(datasets / "cdnow" / "CDNOW_sample.txt")
    return bgnbd.fit(summary["frequency"], summary["recency"], summary["T"]), summary


def test_reproduces_published_cdnow_parameters(cdnow_fit) -> None:
    params, summary = cdnow_fit
    assert len(summary) == 2357 and params.n_customers == 2357
    for name, published in PUBLISHED.items():
        assert getattr(params, name) == pytest.approx(published, rel=0.02), name
    assert params.log_likelihood == pytest.approx(-9582.4, abs=0.5)  # FHL 2005, table 1


def test_published_conditional_expectation(cdnow_fit) -> None:
    """FHL 2005 §5: a customer with x=2, t_x=30.43, T=38.86 is expected to make 1.226 purchases in 39 weeks."""
    params, _ = cdnow_fit
    assert bgnbd.expected_purchases(params, 39, 2, 30.43, 38.86)[()] == pytest.approx(1.226, abs=0.002)


def test_weights_equal_repeated_rows(cdnow_fit) -> None:
    params, summary = cdnow_fit
    combos = summary.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    weighted = bgnbd.fit(combos["frequency"], combos["recency"], combos["T"], weights=combos["n"])
    for name in PUBLISHED:
        assert getattr(weighted, name) == pytest.approx(getattr(params, name), rel=1e-4)


def simulate_bgnbd(rng: np.random.Generator, big_t: np.ndarray, r: float, alpha: float, a: float,
                   b: float) -> tuple[np.ndarray, np.ndarray]:
    """The BG/NBD story: Poisson purchases at a gamma-distributed rate, dropping out after each
    purchase with a beta-distributed probability. Returns (x, t_x) for windows of length big_t."""
    n = len(big_t)
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > big_t[i]:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    return x, t_x


PARAMS = bgnbd.BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n_customers=0)


def test_weekly_buyer_silent_three_weeks_is_less_alive_than_yearly_buyer() -> None:
    # Weekly buyer: 20 repeat purchases over 20 weeks, then 3 silent weeks. Yearly buyer: one repeat
    # purchase after 52 weeks, then 3 silent weeks.
    weekly = bgnbd.p_alive(PARAMS, 20, 20, 23)[()]
    yearly = bgnbd.p_alive(PARAMS, 1, 52, 55)[()]
    assert weekly < yearly
    assert 0 < weekly < 1 and 0 < yearly < 1


def test_p_alive_is_one_without_repeat_purchases() -> None:
    """BG/NBD lets a customer drop out only after a purchase, so x = 0 means alive for sure."""
    np.testing.assert_array_equal(bgnbd.p_alive(PARAMS, [0, 0], [0, 0], [1, 200]), [1.0, 1.0])


def test_expected_purchases_increase_with_frequency_and_horizon() -> None:
    freq = np.arange(0, 15)
    expected = bgnbd.expected_purchases(PARAMS, 39, freq, 38.86, 38.86)  # each just bought
    assert np.all(np.diff(expected) > 0)
    # The model's true behaviour once they have been silent for 9 weeks: more past purchases first
    # raise the expectation, then lower it (a frequent buyer who went quiet has probably left).
    silent = bgnbd.expected_purchases(PARAMS, 39, freq, 30.0, 38.86)
    assert silent[1] > silent[0] and silent[-1] < silent.max()
    horizons = [bgnbd.expected_purchases(PARAMS, t, 3, 30.0, 38.86)[()] for t in (0, 10, 39, 100)]
    assert horizons[0] == 0 and np.all(np.diff(horizons) > 0)


def test_silence_lowers_p_alive_and_expectation() -> None:
    recent = bgnbd.expected_purchases(PARAMS, 39, 5, 38, 38.86)[()]
    silent = bgnbd.expected_purchases(PARAMS, 39, 5, 10, 38.86)[()]
    assert silent < recent
    assert bgnbd.p_alive(PARAMS, 5, 10, 38.86)[()] < bgnbd.p_alive(PARAMS, 5, 38, 38.86)[()]


def test_fit_recovers_simulated_parameters() -> None:
    """Simulate the BG/NBD generative process and check the fit finds its parameters again."""
    n, true = 20_000, dict(r=0.5, alpha=6.0, a=0.8, b=3.0)
    big_t = np.full(n, 52.0)
    x, t_x = simulate_bgnbd(np.random.default_rng(7), big_t, **true)
    fitted = bgnbd.fit(x, t_x, big_t)
    for name, value in true.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=0.15), name


@pytest.mark.parametrize("frequency,recency,T", [([-1], [0], [1]), ([1], [5], [3]), ([np.nan], [0], [1])])
def test_bad_inputs_raise_clear_errors(frequency, recency, T) -> None:
    with pytest.raises(ValueError, match="frequency|finite"):
        bgnbd.fit(frequency, recency, T)


# --- the warehouse step ----------------------------------------------------------------------------

import sqlalchemy as sa  # noqa: E402

from orchestration.predictions.step import PredictionError, compute_profile_predictions  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402

AS_OF = pd.Timestamp("2024-06-30 12:00:00").to_pydatetime()


def simulated_summary(n: int, seed: int = 3) -> pd.DataFrame:
    """A customer_purchase_summary in days, drawn from the BG/NBD process (plus profile ids)."""
    rng = np.random.default_rng(seed)
    big_t = rng.integers(30, 730, n).astype(float)
    x, t_x = simulate_bgnbd(rng, big_t, r=0.6, alpha=40.0, a=0.9, b=3.0)
    return pd.DataFrame({"profile_id": [f"p{i:06d}" for i in range(n)], "frequency": x.astype(np.int64),
                         "recency_days": np.floor(t_x), "t_days": big_t})  # whole days, like the dbt model


def write_summary(warehouse: Warehouse, frame: pd.DataFrame) -> None:
    engine = warehouse.engine()
    table = f"{warehouse.marts_schema}.customer_purchase_summary"
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table {table} (profile_id text, frequency bigint, "
                             "recency_days double precision, t_days double precision)"))
        conn.execute(sa.text(f"insert into {table} values (:profile_id, :frequency, :recency_days, :t_days)"),
                     frame.to_dict("records"))
    engine.dispose()


def read_predictions(warehouse: Warehouse) -> pd.DataFrame:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from predictions.profile_predictions order by profile_id"))
        frame = pd.DataFrame(rows.fetchall(), columns=list(rows.keys()))
    engine.dispose()
    return frame


def test_step_writes_one_prediction_per_profile(any_warehouse: Warehouse) -> None:
    summary = simulated_summary(1500)
    bad = pd.DataFrame({"profile_id": ["zbad1", "zbad2"], "frequency": [2, None],
                        "recency_days": [50.0, 3.0], "t_days": [20.0, 9.0]})  # recency > t; null frequency
    write_summary(any_warehouse, pd.concat([summary, bad], ignore_index=True).astype({"frequency": "Int64"})
                  .astype(object).where(lambda f: f.notna(), None))
    result = compute_profile_predictions(any_warehouse, AS_OF)

    assert result["status"] == "fitted" and result["reason"] is None
    assert result["rows"] == 1502 and result["rows_with_predictions"] == 1500
    assert result["customers_fitted"] == 1500 and result["combos"] <= 1500
    out = read_predictions(any_warehouse)
    assert list(out.columns) == ["profile_id", "p_alive", "expected_purchases_90d", "frequency", "recency_days",
                                 "t_days", "model", "r", "alpha", "a", "b", "as_of", "fitted_at"]
    assert out["profile_id"].is_unique and len(out) == 1502
    good, invalid = out[~out["profile_id"].str.startswith("z")], out[out["profile_id"].str.startswith("z")]
    assert invalid["p_alive"].isna().all() and invalid["expected_purchases_90d"].isna().all()
    # The SQL join gives each profile exactly what the model gives its own inputs.
    params = bgnbd.BGNBDParams(**{k: float(good[k].iloc[0]) for k in ("r", "alpha", "a", "b")},
                               log_likelihood=0.0, n_customers=0)
    np.testing.assert_allclose(good["p_alive"], bgnbd.p_alive(params, good["frequency"].astype(float),
                                                              good["recency_days"], good["t_days"]), rtol=1e-12)
    np.testing.assert_allclose(good["expected_purchases_90d"], bgnbd.expected_purchases(
        params, 90, good["frequency"].astype(float), good["recency_days"], good["t_days"]), rtol=1e-12)
    assert (good.loc[good["frequency"] == 0, "p_alive"] == 1.0).all()
    assert good["p_alive"].between(0, 1).all() and (good["expected_purchases_90d"] >= 0).all()
    assert (out["model"] == "bgnbd").all()
    assert pd.Timestamp(out["as_of"].iloc[0]) == pd.Timestamp(AS_OF)
    # Generated with r=0.6, alpha=40 days, a=0.9, b=3: the fit lands in that neighbourhood.
    assert 0.4 < result["params"]["r"] < 0.9 and 25 < result["params"]["alpha"] < 60


def test_step_rerun_replaces_the_table(duck_warehouse: Warehouse) -> None:
    write_summary(duck_warehouse, simulated_summary(300))
    first = compute_profile_predictions(duck_warehouse, AS_OF)
    second = compute_profile_predictions(duck_warehouse, AS_OF, horizon_days=30)
    assert first["rows"] == second["rows"] == 300
    out = read_predictions(duck_warehouse)
    assert "expected_purchases_30d" in out.columns and "expected_purchases_90d" not in out.columns
    assert len(out) == 300


def test_step_with_too_few_customers_writes_null_predictions(any_warehouse: Warehouse) -> None:
    write_summary(any_warehouse, simulated_summary(20))
    result = compute_profile_predictions(any_warehouse, AS_OF)
    assert result["status"] == "skipped" and "need 50" in result["reason"]
    assert result["params"] is None and result["rows"] == 20 and result["rows_with_predictions"] == 0
    out = read_predictions(any_warehouse)
    assert len(out) == 20 and out["p_alive"].isna().all() and out["r"].isna().all()
    assert (out["model"] == "bgnbd").all()


def test_step_without_repeat_buyers_says_why(duck_warehouse: Warehouse) -> None:
    frame = simulated_summary(100).assign(frequency=0, recency_days=0.0)
    write_summary(duck_warehouse, frame)
    result = compute_profile_predictions(duck_warehouse, AS_OF)
    assert result["status"] == "skipped" and "repeat purchase" in result["reason"]
    assert read_predictions(duck_warehouse)["p_alive"].isna().all()


def test_step_without_source_model_fails_clearly_and_writes_nothing(duck_warehouse: Warehouse) -> None:
    with pytest.raises(PredictionError, match="lifeline build"):
        compute_profile_predictions(duck_warehouse, AS_OF)
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from information_schema.tables "
                                    "where table_schema = 'predictions'")).scalar() == 0
    engine.dispose()


def test_step_on_cdnow_in_days_matches_the_weekly_fit(shared_datasets: Path, duck_warehouse: Warehouse) -> None:
    """Same data in days: r, a, b unchanged and alpha scales by 7 (CDNOW sample, 39-week calibration)."""
    weeks = cdnow_calibration_summary(shared_datasets / "cdnow" / "CDNOW_sample.txt")
    days = pd.DataFrame({"profile_id": weeks.index.astype(str), "frequency": weeks["frequency"].astype(int),
                         "recency_days": (weeks["recency"] * 7).round(), "t_days": (weeks["T"] * 7).round()})
    write_summary(duck_warehouse, days)
    result = compute_profile_predictions(duck_warehouse, AS_OF)
    assert result["rows_with_predictions"] == 2357
    got = result["params"]
    assert got["r"] == pytest.approx(0.243, rel=0.02) and got["a"] == pytest.approx(0.793, rel=0.02)
    assert got["b"] == pytest.approx(2.426, rel=0.02) and got["alpha"] == pytest.approx(4.414 * 7, rel=0.02)


def test_analytic_gradient_matches_finite_differences() -> None:
    from scipy.optimize import check_grad

    rng = np.random.default_rng(11)
    big_t = rng.uniform(5, 60, 500)
    x, t_x = simulate_bgnbd(rng, big_t, r=0.4, alpha=5.0, a=0.8, b=2.5)
    objective = bgnbd._Objective(*bgnbd._aggregate(x, t_x, big_t, np.ones_like(x)))
    for point in (np.log([0.4, 5.0, 0.8, 2.5]), np.log([2.0, 0.5, 3.0, 0.3])):
        # The per-x grouped objective equals the plain per-customer log-likelihood (FHL eq. 6).
        direct = bgnbd._log_likelihood(*np.exp(point), x, t_x, big_t).mean()
        assert objective(point)[0] == pytest.approx(-direct, rel=1e-12)
        error = check_grad(lambda p: objective(p)[0], lambda p: objective(p)[1], point)
        assert error < 1e-5 * max(1.0, np.linalg.norm(objective(point)[1]))
