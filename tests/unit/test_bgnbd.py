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
    rng = np.random.default_rng(7)
    n, big_t, true = 20_000, 52.0, dict(r=0.5, alpha=6.0, a=0.8, b=3.0)
    lam = rng.gamma(true["r"], 1 / true["alpha"], n)
    p = rng.beta(true["a"], true["b"], n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > big_t:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    fitted = bgnbd.fit(x, t_x, np.full(n, big_t))
    for name, value in true.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=0.15), name


@pytest.mark.parametrize("frequency,recency,T", [([-1], [0], [1]), ([1], [5], [3]), ([np.nan], [0], [1])])
def test_bad_inputs_raise_clear_errors(frequency, recency, T) -> None:
    with pytest.raises(ValueError, match="frequency|finite"):
        bgnbd.fit(frequency, recency, T)
