"""profile_id across runs, on DuckDB and PostgreSQL. One history per engine:
base build -> incremental build with new events (a merge of two existing people, a kiosk that
becomes shared, a newcomer, a late event) -> full refresh of the same data. Checks that the
older id survives a merge and profile_merges records it, unrelated data renumbers nobody, the
incremental run recomputes only touched components, and it equals the full refresh."""
from __future__ import annotations

import pytest

from identity_helpers import Stitcher, event, graph_stats


def people(n: int) -> list[dict]:
    return [event(f"p{i}", f"2026-01-01T{i % 24:02d}:{i % 60:02d}:00Z", anonymous_id=f"cookie-{i}",
                  email=f"person{i}@example.com") for i in range(n)]


BASE = people(40) + [
    # 5 people on one kiosk: at the limit (5), so still stitched together.
    *[event(f"k{i}", "2026-01-05T10:00:00Z", anonymous_id="kiosk", email=f"person{i}@example.com") for i in range(5)],
    # Ann on her laptop (older) and, unknown to us, on her phone with a phone number (newer).
    event("a1", "2026-01-01T09:00:00Z", anonymous_id="cookie-ann", email="ann@example.com"),
    event("a2", "2026-02-01T10:00:00Z", anonymous_id="cookie-ann-phone", phone="+14155550123"),
]
NEW = [
    event("n1", "2026-03-01T10:00:00Z", anonymous_id="cookie-ann-phone", email="ann@example.com"),  # merge
    event("n2", "2026-03-01T10:00:00Z", anonymous_id="kiosk", email="person20@example.com"),  # kiosk now shared
    event("n3", "2026-03-01T10:00:00Z", anonymous_id="cookie-new", email="newcomer@example.com"),  # unrelated
    event("n4", "2025-06-01T10:00:00Z", anonymous_id="cookie-12", phone="+14155550144"),  # late, earlier event
]


@pytest.fixture(scope="module")
def history(module_stitcher: Stitcher) -> dict:
    s = module_stitcher
    first = graph_stats(s.build(BASE))
    before = s.identity_map()
    merges_before = s.rows("select count(*) from profile_merges")[0][0]
    incremental = graph_stats(s.build(BASE + NEW))
    after = s.identity_map()
    components = sorted(s.rows("select identifier_key, component_key from intermediate.int_identity_components"))
    merges = s.rows("select old_profile_id, new_profile_id, cast(merged_at as date), identifiers_moved "
                    "from profile_merges")
    s.build(BASE + NEW, full_refresh=True)
    return {"first": first, "before": before, "merges_before": merges_before, "incremental": incremental,
            "after": after, "components": components, "merges": merges,
            "full_map": s.identity_map(), "full_merges": s.rows("select count(*) from profile_merges")[0][0],
            "full_components": sorted(s.rows("select identifier_key, component_key "
                                             "from intermediate.int_identity_components"))}


def test_merge_of_two_existing_people_keeps_the_older_id_and_is_recorded(history):
    before, after = history["before"], history["after"]
    older, newer = before[("email", "ann@example.com")], before[("phone", "+14155550123")]
    assert older != newer and history["merges_before"] == 0
    assert {after[k] for k in [("email", "ann@example.com"), ("anonymous_id", "cookie-ann"),
                               ("anonymous_id", "cookie-ann-phone"), ("phone", "+14155550123")]} == {older}
    # Person 12's late event (2025) makes a new earliest identifier: the profile is renamed, which
    # profile_merges records the same way, so syncs can re-key it.
    renamed = (before[("anonymous_id", "cookie-12")], after[("anonymous_id", "cookie-12")], 2)
    assert sorted((old, new, moved) for old, new, _, moved in history["merges"]) == sorted([(newer, older, 2), renamed])
    assert {str(day) for _, _, day, _ in history["merges"]} == {"2026-11-01"}


def test_unrelated_new_data_renumbers_nobody(history):
    before, after = history["before"], history["after"]
    touched = {"kiosk", "cookie-ann-phone", "+14155550123", "cookie-12", "person12@example.com",
               *(f"cookie-{i}" for i in range(5)), *(f"person{i}@example.com" for i in range(5))}
    untouched = [k for k in before if k[1] not in touched]
    assert len(untouched) > 60
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}


def test_incremental_run_recomputes_only_the_touched_components(history):
    first, incremental = history["first"], history["incremental"]
    assert first["largest"] == 11  # the kiosk and the five people it links (two ids each)
    assert incremental["stored"] == first["linked"]
    # kiosk component (11) + both of Ann's (2 + 2) + person 12 (2) + the newcomer (2) + the new
    # phone (1); nobody else (person 20's new record is with the kiosk, which now links nobody).
    assert incremental["recomputed"] == 11 + 4 + 2 + 2 + 1
    assert ("anonymous_id", "kiosk") not in history["after"]
    assert len({history["after"][("email", f"person{i}@example.com")] for i in range(5)}) == 5


def test_incremental_result_equals_full_refresh_and_merges_are_kept(history):
    assert history["full_map"] == history["after"]
    assert history["full_components"] == history["components"]
    assert history["full_merges"] == len(history["merges"]) == 2
