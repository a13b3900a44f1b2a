"""Fixed-window rate limits as the platforms document them (burst window + steady window).

A platform reports how much of its window is left (Klaviyo `RateLimit-*`, Braze `X-RateLimit-*`),
so the server needs counters it can read back; pyrate-limiter's buckets do not expose "remaining"
or "reset", hence this small counter. Windows are aligned to the clock like Klaviyo's fixed windows.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int          # the limit of the tightest window
    remaining: int      # requests left in the tightest window after this one
    reset_s: int        # whole seconds until the tightest window resets
    reset_epoch: int    # the same moment as a Unix timestamp


@dataclass
class RateLimiter:
    """Named classes of windows (e.g. 'klaviyo:M' -> 10/1s + 150/60s); `check` counts one request."""

    classes: dict[str, tuple[Window, ...]]
    enabled: bool = True
    clock: Callable[[], float] = time.time
    _counts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def override(self, name: str, windows: tuple[Window, ...]) -> None:
        self.classes[name] = windows

    def check(self, name: str, key: str = "") -> Verdict:
        windows = self.classes[name]
        now = self.clock()
        with self._lock:
            states = []
            for i, w in enumerate(windows):
                start = math.floor(now / w.seconds)
                used = self._counts.get((f"{name}|{key}", i, start), 0)
                states.append((w, i, start, used))
            allowed = not self.enabled or all(used < w.limit for w, _, _, used in states)
            if allowed:
                for w, i, start, used in states:
                    self._counts[(f"{name}|{key}", i, start)] = used + 1
                self._trim(now)
        tight = min(states, key=lambda s: (s[0].limit - s[3] - (1 if allowed else 0)) / s[0].limit)
        w, _, start, used = tight
        end = (start + 1) * w.seconds
        remaining = max(0, w.limit - used - (1 if allowed else 0))
        return Verdict(allowed, w.limit, remaining, max(1, math.ceil(end - now)), math.ceil(end))

    def _trim(self, now: float) -> None:
        """Forget windows that ended (keeps memory flat on a long-running server)."""
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items()
                            if (k[2] + 1) * self._window_len(k) > now}

    def _window_len(self, key: tuple[str, int, int]) -> float:
        return self.classes[key[0].split("|", 1)[0]][key[1]].seconds


def windows(*pairs: tuple[int, float]) -> tuple[Window, ...]:
    return tuple(Window(limit, seconds) for limit, seconds in pairs)


# Documented limits (destinations.md). Where a platform publishes no number, the choice is noted.
DEFAULT_CLASSES: dict[str, tuple[Window, ...]] = {
    "klaviyo:XS": windows((1, 1), (15, 60)),
    "klaviyo:S": windows((3, 1), (60, 60)),
    "klaviyo:M": windows((10, 1), (150, 60)),
    "klaviyo:L": windows((75, 1), (750, 60)),
    "klaviyo:XL": windows((350, 1), (3500, 60)),
    "braze:users_track": windows((3000, 3)),
    "braze:users_delete": windows((20_000, 60)),
    "braze:default": windows((250_000, 3600)),
    # Twilio publishes no number for REST concurrency; 100 requests/s per account is our choice.
    "twilio:api": windows((100, 1)),
    # Meta: Custom Audience business-use-case quota, Standard tier base 5000/hour (secondary [M6]).
    "meta:ca": windows((5000, 3600)),
    # Google Data Manager: no published number; 300 requests/minute is our choice.
    "google:api": windows((300, 60)),
    # TikTok: no published number; 10 requests/s is our choice.
    "tiktok:api": windows((10, 1)),
}


def default_limiter(enabled: bool, overrides: dict[str, tuple[tuple[int, float], ...]] | None = None) -> RateLimiter:
    classes = dict(DEFAULT_CLASSES)
    for name, pairs in (overrides or {}).items():
        if name not in classes:
            raise ValueError(f"unknown rate-limit class {name!r}; known: {', '.join(sorted(classes))}")
        classes[name] = windows(*pairs)
    return RateLimiter(classes, enabled=enabled)
