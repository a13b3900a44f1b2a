"""What a landing run builds: the assets downstream of the raw tables its files fill.

Files of behavioural tables (events, message_events) take the fast lane: everything downstream of
them except the identity, lifecycle, analytics and quality (quarantine) groups, which the hourly
run rebuilds. What a known person just did reaches the trigger audiences in the time of the
behavioural path (staging, the person's events and consent, the audiences and their syncs) instead
of waiting for the whole identity graph: a new event of a combination of identifiers not stitched
yet is resolved through identity_map as it stands (int_profile_events), and an unsubscribe or
opt-out in the files still reaches profiles and the audiences in the same run. What needs the
identity graph (a new person, a merge of two profiles), the slow-moving marts (lifecycle stages,
analytics) and the quarantine report follow at the next hourly run. Files of any other table
(customers, orders, products...) change who people are and what they bought, so their run builds
everything downstream.
"""
from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

FAST_LANE_TABLES = frozenset({"events", "message_events"})
HOURLY_GROUPS = frozenset({"identity", "lifecycle", "analytics", "quality"})


def landing_selection(asset_graph, tables: Iterable[str]) -> list[dg.AssetKey]:
    """The assets a landing run of `tables` builds, sorted by key."""
    tables = set(tables)
    raw_keys = [dg.AssetKey(["raw", table]) for table in sorted(tables)]
    if not tables <= FAST_LANE_TABLES:
        selected = dg.AssetSelection.assets(*raw_keys).downstream().resolve(asset_graph)
        return sorted(selected, key=lambda k: k.to_user_string())
    selected: set[dg.AssetKey] = set(raw_keys)
    frontier = list(raw_keys)
    while frontier:
        for child in asset_graph.get(frontier.pop()).child_keys:
            if child not in selected and asset_graph.get(child).group_name not in HOURLY_GROUPS:
                selected.add(child)
                frontier.append(child)
    return sorted(selected, key=lambda k: k.to_user_string())
