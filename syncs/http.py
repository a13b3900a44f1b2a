"""HTTP sessions for destinations: retries for transient errors only (connection errors, 429,
5xx) with jittered exponential backoff honouring Retry-After (urllib3's Retry), and a
per-destination rate limiter (pyrate-limiter) set from the platform's documented limits."""
from __future__ import annotations

import time
from typing import Sequence

import requests
from pyrate_limiter import Duration, FixedWindow, InMemoryBucket, Limiter, Rate, WallClock
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

TRANSIENT = (429, 500, 502, 503, 504, 524)


class CountingRetry(Retry):
    """urllib3 Retry that counts how many retries it made (for the run record)."""

    counter: list[int]

    def increment(self, *args, **kwargs):  # noqa: D401
        new = super().increment(*args, **kwargs)
        new.counter = self.counter
        self.counter[0] += 1
        return new


class ResetHeaderRetry(CountingRetry):
    """For platforms that answer 429 with no Retry-After but a window-reset time (Braze's
    `X-RateLimit-Reset`, UTC epoch seconds): wait until that moment (at most `max_wait_s`), else
    back off as usual."""

    reset_header = "X-RateLimit-Reset"
    max_wait_s = 120.0

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is not None:
            return seconds
        try:
            wait = float(response.headers.get(self.reset_header, "")) - time.time()
        except ValueError:
            return None
        return min(wait, self.max_wait_s) if wait > 0 else None


def session(total_retries: int = 8, backoff: float = 0.5,
            retry_class: type[CountingRetry] = CountingRetry) -> tuple[requests.Session, list[int]]:
    counter = [0]
    retry = retry_class(total=total_retries, connect=total_retries, read=total_retries, status=total_retries,
                          backoff_factor=backoff, backoff_jitter=0.5, backoff_max=30,
                          status_forcelist=TRANSIENT, allowed_methods=None, respect_retry_after_header=True,
                          raise_on_status=False)
    retry.counter = counter
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=4))
    s.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=4))
    return s, counter


class WallClockBucket(InMemoryBucket):
    """pyrate-limiter's in-memory bucket timed by the wall clock (its default is monotonic), so
    that FixedWindow windows start on whole UTC seconds and minutes."""

    _clock = WallClock()


def limiter(rates: Sequence[tuple[int, float]], aligned: bool = False) -> Limiter:
    """A blocking limiter from (requests, seconds) windows, e.g. [(10, 1), (150, 60)].

    By default each window is rolling (pyrate-limiter's sliding log): never more than n calls in
    any span of that length, so it cannot overrun a platform whatever its windows' alignment, but
    against clock-aligned fixed windows it gives up to one window per run (after a burst it waits
    a full window from its first call, where the platform's window resets at the next boundary).
    `aligned=True` counts in fixed windows aligned to the wall clock (pyrate-limiter's
    FixedWindow), as a platform documenting clock-aligned fixed windows counts; a clock skew
    against the platform shows up as 429s, which the session retries after Retry-After."""
    rate_list = [Rate(n, int(seconds * Duration.SECOND)) for n, seconds in rates]
    if aligned:
        return Limiter(WallClockBucket(rate_list, algorithm=FixedWindow()))
    return Limiter(rate_list)
