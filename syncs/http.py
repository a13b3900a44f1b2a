"""HTTP sessions for destinations: retries for transient errors only (connection errors, 429,
5xx) with jittered exponential backoff honouring Retry-After (urllib3's Retry), and a
per-destination rate limiter (pyrate-limiter) set from the platform's documented limits."""
from __future__ import annotations

from typing import Sequence

import requests
from pyrate_limiter import Duration, Limiter, Rate
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


def session(total_retries: int = 8, backoff: float = 0.5) -> tuple[requests.Session, list[int]]:
    counter = [0]
    retry = CountingRetry(total=total_retries, connect=total_retries, read=total_retries, status=total_retries,
                          backoff_factor=backoff, backoff_jitter=0.5, backoff_max=30,
                          status_forcelist=TRANSIENT, allowed_methods=None, respect_retry_after_header=True,
                          raise_on_status=False)
    retry.counter = counter
    s = requests.Session()
    s.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=4))
    s.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=4))
    return s, counter


def limiter(rates: Sequence[tuple[int, float]]) -> Limiter:
    """A blocking limiter from (requests, seconds) windows, e.g. [(10, 1), (150, 60)]."""
    return Limiter([Rate(n, int(seconds * Duration.SECOND)) for n, seconds in rates])
