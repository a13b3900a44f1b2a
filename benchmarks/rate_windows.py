"""What documented rate limits allow: the fewest seconds a sequence of calls needs under
clock-aligned fixed windows (as Klaviyo documents its limits and the sandbox counts them), and the
documented tier of each Klaviyo call the benchmarks make. No imports from the rest of the project,
so the tests can load it by path."""
from __future__ import annotations

import math

# Documented Klaviyo tiers of the calls a removal makes (shared/destinations.md [K1]/[K2]): list
# relationships are M; GET /api/profiles and GET /api/lists are taken as L (75/s, 700/min), which is
# also what the client assumes (syncs/destinations/klaviyo.py RATE_L). The sandbox is more generous
# (L 750/min, GET /api/profiles XL), so these windows are the stricter reading of "allowed".
DOCUMENTED_TIERS = {"M": ((10, 1.0), (150, 60.0)), "L": ((75, 1.0), (700, 60.0))}


def klaviyo_tier(call: str) -> str:
    """Documented tier of a call as the counting sandbox names it ("DELETE klaviyo:list-relationships")."""
    method, _, path = call.partition(" ")
    if path in ("klaviyo:list-relationships", "klaviyo:bulk-import-create", "klaviyo:bulk-import-read") or \
            (path == "klaviyo/api/lists" and method == "POST"):
        return "M"
    if path in ("klaviyo/api/profiles", "klaviyo/api/lists"):
        return "L"
    raise ValueError(f"no documented Klaviyo tier for {call!r}: add it to klaviyo_tier")


def fixed_window_schedule(tiers: list[str], start: float, windows: dict[str, tuple[tuple[int, float], ...]]) -> float:
    """Fewest seconds from `start` to the last of a sequence of calls sent one after another, each
    at the earliest moment every clock-aligned fixed window of its tier has room (as the sandbox
    and Klaviyo count them): what the limits allow for exactly these calls in this order."""
    t = start
    used: dict[tuple[str, int, int], int] = {}
    for tier in tiers:
        wins = windows[tier]
        while True:
            full = [w for i, (limit, w) in enumerate(wins) if used.get((tier, i, math.floor(t / w)), 0) >= limit]
            if not full:
                break
            t = max((math.floor(t / w) + 1) * w for w in full)
        for i, (_, w) in enumerate(wins):
            key = (tier, i, math.floor(t / w))
            used[key] = used.get(key, 0) + 1
    return t - start


def busiest_window(times: list[float], seconds: float) -> int:
    """Most calls that fell in any `seconds`-long span (rolling): a client's sliding-window limiter
    of that span can only have made a call wait if this reached its limit."""
    ordered, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - seconds:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
