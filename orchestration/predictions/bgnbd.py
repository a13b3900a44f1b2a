"""BG/NBD purchase-cadence model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Why a local implementation rather than a library: `lifetimes` 0.11.3 (last release 2020,
unmaintained) does install beside numpy 2.4 / pandas 3.1, but `lifetimes.datasets` no longer
imports (it needs the removed `pkg_resources`), it drags in autograd, and its fitter raised
ConvergenceError on a toy input we tried; `btyd`, its successor, is built on PyMC, far heavier than
a 4-parameter model needs. The model itself is a closed-form likelihood, so it is a few vectorised numpy/scipy lines:
the log-likelihood below uses `gammaln`/`betaln`, the conditional expectation uses `hyp2f1`, and
the fit is L-BFGS-B on the log-parameters (so r, alpha, a, b stay positive).

Inputs per customer: ``frequency`` x (repeat purchases), ``recency`` t_x (time of the last
purchase, measured from the first), ``T`` (time from the first purchase to the end of the
observation window). Units are whatever the caller passes (weeks for CDNOW, days in the
warehouse step); alpha is then in the same unit. Identical (x, t_x, T) rows are aggregated with
weights before fitting, so millions of customers with few distinct combinations fit in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

ArrayLike = np.ndarray | list[float] | tuple[float, ...]


class BGNBDFitError(RuntimeError):
    """The optimiser did not converge; the message says why and what to check in the inputs."""


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: float


def _as_arrays(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, ...]:
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    x, t_x, big_t = np.broadcast_arrays(x, t_x, big_t)
    if np.any(~np.isfinite(x)) or np.any(~np.isfinite(t_x)) or np.any(~np.isfinite(big_t)):
        raise ValueError("frequency, recency and T must be finite numbers (no NaN or inf).")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > big_t):
        raise ValueError("Need frequency >= 0 and 0 <= recency <= T for every customer "
                         "(recency is measured from the first purchase, T to the end of the window).")
    return x, t_x, big_t


def _log_likelihood(r: float, alpha: float, a: float, b: float,
                    x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005, eq. 6), computed in log space."""
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    survived = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr = x[repeat]
    dropped[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    return head + np.logaddexp(survived, dropped)


def _aggregate(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray,
               weights: np.ndarray) -> tuple[np.ndarray, ...]:
    rows = np.stack([x, t_x, big_t], axis=1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weights, minlength=len(unique))
    return unique[:, 0], unique[:, 1], unique[:, 2], summed


def fit(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
        weights: ArrayLike | None = None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters; ``weights`` counts customers per row (default 1)."""
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    if x.size == 0 or w.sum() <= 0:
        raise ValueError("fit() needs at least one customer with a positive weight.")
    x, t_x, big_t, w = _aggregate(x.ravel(), t_x.ravel(), big_t.ravel(), np.asarray(w, dtype=float).ravel())
    total = w.sum()
    # Scale start values so alpha starts near the data's time scale (weeks or days alike).
    start = np.log([1.0, max(float(np.average(big_t, weights=w)), 1e-3) / 10.0, 1.0, 1.0])

    def objective(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        value = -np.dot(w, _log_likelihood(r, alpha, a, b, x, t_x, big_t)) / total
        return float(value) if np.isfinite(value) else 1e300

    result = minimize(objective, start, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    if not result.success and not np.isfinite(result.fun):
        raise BGNBDFitError(f"BG/NBD fit did not converge ({result.message}); check that the inputs "
                            "hold repeat buyers and that recency/T share one time unit.")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=float(-result.fun * total),
                       n_customers=float(total))


def _dropout_odds(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for x > 0, else 0 (a one-time buyer cannot have dropped)."""
    odds = np.zeros_like(x)
    rep = x > 0
    xr = x[rep]
    log_odds = (np.log(params.a) - np.log(params.b + xr - 1)
                + (params.r + xr) * (np.log(params.alpha + big_t[rep]) - np.log(params.alpha + t_x[rep])))
    odds[rep] = np.exp(np.minimum(log_odds, 700.0))
    return odds


def p_alive(params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(customer still active at T | x, t_x, T). Exactly 1 when x = 0: in BG/NBD a customer can
    only drop out right after a purchase, so someone with no repeat purchase is alive for sure."""
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, big_t))


def expected_purchases(params: BGNBDParams, t: float, frequency: ArrayLike, recency: ArrayLike,
                       T: ArrayLike) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10)."""
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    if t < 0:
        raise ValueError(f"horizon t must be >= 0, got {t}.")
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + big_t + t)
    power = (r + x) * (np.log(alpha + big_t) - np.log(alpha + big_t + t))
    bracket = 1.0 - np.exp(power) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * bracket / (1.0 + _dropout_odds(params, x, t_x, big_t))
