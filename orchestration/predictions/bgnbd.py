"""BG/NBD purchase-cadence model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Why a local implementation rather than a library: we tried `lifetimes` 0.11.3 beside numpy 2.4 /
pandas 3.1. Its BetaGeoFitter does install and reproduces the CDNOW fit, but the package has had no
release since 2020, `lifetimes.datasets` no longer imports (it needs the removed `pkg_resources`),
and it pulls in autograd; on a small degenerate input it raised ConvergenceError. `btyd`, its
successor, is built on PyMC, far heavier than a 4-parameter model needs. The model is a
closed-form likelihood, so it is a few vectorised numpy/scipy lines here: the log-likelihood uses
`gammaln`/`betaln` (its gradient `digamma`), the conditional expectation `hyp2f1`, and the fit is
L-BFGS-B with an analytic gradient on the log-parameters (so r, alpha, a, b stay positive).

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
from scipy.special import betaln, digamma, gammaln, hyp2f1

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
    """Per-customer log-likelihood (FHL 2005, eq. 6), row by row: the reference that the grouped
    objective below is tested against."""
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    survived = -(r + x) * np.log(alpha + big_t)
    repeat = x > 0
    dropped = np.full_like(x, -np.inf)
    xr = x[repeat]
    dropped[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    return head + np.logaddexp(survived, dropped)


def _aggregate(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray,
               weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sum the weights of identical (x, t_x, T) rows (sort once, cut where a row changes)."""
    order = np.lexsort((big_t, t_x, x))
    x, t_x, big_t, weights = x[order], t_x[order], big_t[order], weights[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(x) != 0) | (np.diff(t_x) != 0) | (np.diff(big_t) != 0)])
    return x[starts], t_x[starts], big_t[starts], np.add.reduceat(weights, starts)


class _Objective:
    """Mean negative log-likelihood and its gradient in (log r, log alpha, log a, log b).

    The gamma/beta terms depend on x alone, so they are summed over the few distinct x values;
    per (x, t_x, T) row only logs and a two-term log-sum-exp remain."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, w: np.ndarray) -> None:
        self.x, self.t_x, self.big_t, self.w = x, t_x, big_t, w
        self.total = w.sum()
        self.xs, inverse = np.unique(x, return_inverse=True)
        self.wx = np.bincount(inverse.ravel(), weights=w)
        self.repeat = x > 0

    def __call__(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(log_params)
        x, xs, wx, w = self.x, self.xs, self.wx, self.w
        head = np.dot(wx, gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xs) - betaln(a, b))
        d_head = np.array([
            np.dot(wx, digamma(r + xs) - digamma(r) + np.log(alpha)),
            np.dot(wx, r / alpha + 0 * xs),
            np.dot(wx, digamma(a + b) - digamma(a + b + xs)),
            np.dot(wx, digamma(b + xs) - digamma(a + b + xs) - digamma(b) + digamma(a + b)),
        ])
        log_at, log_atx = np.log(alpha + self.big_t), np.log(alpha + self.t_x)
        survived = -(r + x) * log_at
        dropped = np.full_like(x, -np.inf)
        rep = self.repeat
        dropped[rep] = np.log(a) - np.log(b + x[rep] - 1) - (r + x[rep]) * log_atx[rep]
        mix = np.logaddexp(survived, dropped)
        pi = np.exp(dropped - mix)  # share of the "dropped out after the last purchase" branch
        d_rows = np.array([
            np.dot(w, -(1 - pi) * log_at - pi * log_atx),
            np.dot(w, -(r + x) * ((1 - pi) / (alpha + self.big_t) + pi / (alpha + self.t_x))),
            np.dot(w, pi / a),
            np.dot(w[rep], -pi[rep] / (b + x[rep] - 1)),
        ])
        value = -(head + np.dot(w, mix)) / self.total
        grad = -(d_head + d_rows) * np.array([r, alpha, a, b]) / self.total
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(4)
        return float(value), grad


def fit(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
        weights: ArrayLike | None = None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters; ``weights`` counts customers per row (default 1)."""
    x, t_x, big_t = _as_arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), x.shape)
    if x.size == 0 or w.sum() <= 0:
        raise ValueError("fit() needs at least one customer with a positive weight.")
    objective = _Objective(*_aggregate(x.ravel(), t_x.ravel(), big_t.ravel(), np.asarray(w, dtype=float).ravel()))
    # Scale start values so alpha starts near the data's time scale (weeks or days alike).
    start = np.log([1.0, max(float(np.average(objective.big_t, weights=objective.w)), 1e-3) / 10.0, 1.0, 1.0])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(-12.0, 12.0)] * 4)
    if not result.success and not np.isfinite(result.fun):
        raise BGNBDFitError(f"BG/NBD fit did not converge ({result.message}); check that the inputs "
                            "hold repeat buyers and that recency/T share one time unit.")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=float(-result.fun * objective.total),
                       n_customers=float(objective.total))


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
