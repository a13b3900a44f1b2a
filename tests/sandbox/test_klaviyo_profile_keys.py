"""Klaviyo stand-in: profiles are found by email, phone_number and external_id through an in-memory
index (syncs/sandbox/profile_keys.py: 64-bit hashes -> rowid) instead of SQLite indexes. A hit is
only a candidate, checked against the stored row; a miss is definite. These tests force what the
check must survive (every key's hash colliding, an identifier that moved, a deleted profile, a
rolled-back write whose rowids are used again) and a restart, which rebuilds the index from the rows."""
from __future__ import annotations

import numpy as np
import pytest
import requests

from syncs.sandbox import klaviyo
from syncs.sandbox.profile_keys import KeyIndex, ProfileKeys, profile_keys
from syncs.sandbox.store import Store

from .conftest import KLAVIYO_HEADERS as H
from .test_klaviyo import api, bulk_body, make_list


def colliding(_: str) -> int:
    """Every key has the same hash: each lookup's candidates are every entry."""
    return 42


def use_colliding_index(sandbox) -> ProfileKeys:
    store = sandbox.app.state.ctx.store
    return store.derived("klaviyo.profile_keys", lambda db: ProfileKeys.load(db, key_hash=colliding))


def bulk(sandbox, profiles: list[dict], list_id: str | None = None) -> None:
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body(profiles, list_id), headers=H)
    assert r.status_code == 202, r.text
    assert r.json()["data"]["attributes"]["failed_count"] == 0, r.text


def found(sandbox, field: str, value: str) -> list[dict]:
    r = requests.get(f"{api(sandbox)}/profiles", params={"filter": f'equals({field},"{value}")'}, headers=H)
    assert r.status_code == 200, r.text
    return [p["attributes"] for p in r.json()["data"]]


def profile_count(sandbox) -> int:
    with sandbox.app.state.ctx.store.tx() as db:
        return db.execute("select count(*) from kl_profiles").fetchone()[0]


def test_key_index_returns_every_entry_of_a_colliding_hash_across_both_levels():
    index = KeyIndex(key_hash=lambda key: len(key), min_delta=4)
    index.add(["aa", "bbb", "cc"], [1, 2, 3])
    index.add(["dd", "eee", "ffff", "gg", "hh"], [4, 5, 6, 7, 8])  # past min_delta: merged into the main arrays
    index.add(["ii", "jjj"], [9, 10])  # stays in the delta
    assert sorted(index.candidates(["xx"]).tolist()) == [1, 3, 4, 7, 8, 9]
    assert sorted(index.candidates(["yyy", "zzzz"]).tolist()) == [2, 5, 6, 10]
    assert index.candidates(["a", "zzzzz"]).tolist() == []
    assert len(index) == 10


def test_every_hash_colliding_still_finds_the_right_profile(sandbox):
    use_colliding_index(sandbox)
    list_id = make_list(sandbox)
    bulk(sandbox, [{"email": "a@example.com", "external_id": "ea"}, {"email": "b@example.com", "external_id": "eb"},
                   {"phone_number": "+15550000001"}], list_id)
    bulk(sandbox, [{"email": "c@example.com"}])  # every stored profile a candidate, none a match: a new one
    bulk(sandbox, [{"email": "B@example.com", "first_name": "Bea"}, {"external_id": "ea", "last_name": "Ay"}])
    r = requests.post(f"{api(sandbox)}/profile-import", headers=H, json={
        "data": {"type": "profile", "attributes": {"phone_number": "+15550000001", "first_name": "Phil"}}})
    assert r.status_code == 200, r.text  # merged into the stored profile, not created
    assert profile_count(sandbox) == 4
    assert [(p["external_id"], p["first_name"]) for p in found(sandbox, "email", "b@example.com")] == [("eb", "Bea")]
    assert [(p["email"], p["last_name"]) for p in found(sandbox, "external_id", "ea")] == [("a@example.com", "Ay")]
    assert found(sandbox, "email", "nobody@example.com") == []


def test_an_identifier_that_moved_or_a_deleted_profile_no_longer_finds_the_old_profile(sandbox):
    bulk(sandbox, [{"external_id": "e1", "email": "old@example.com"}, {"email": "gone@example.com"}])
    bulk(sandbox, [{"external_id": "e1", "email": "new@example.com"}])  # e1's email moves
    assert [p["external_id"] for p in found(sandbox, "email", "new@example.com")] == ["e1"]
    assert found(sandbox, "email", "old@example.com") == []
    r = requests.post(f"{api(sandbox)}/data-privacy-deletion-jobs", headers=H, json={"data": {
        "type": "data-privacy-deletion-job",
        "attributes": {"profile": {"data": {"type": "profile", "attributes": {"email": "gone@example.com"}}}}}})
    assert r.status_code == 202, r.text
    bulk(sandbox, [{"email": "old@example.com", "first_name": "Other"}, {"email": "gone@example.com"}])
    assert profile_count(sandbox) == 3  # e1, and two new profiles
    assert [(p.get("external_id"), p["first_name"]) for p in found(sandbox, "email", "old@example.com")] == [(None, "Other")]
    assert [p["email"] for p in found(sandbox, "external_id", "e1")] == ["new@example.com"]


def test_a_restart_finds_the_profiles_imported_before_it(start_sandbox, tmp_path):
    first = start_sandbox(state_dir=tmp_path / "kept")
    bulk(first, [{"email": f"p{i}@example.com", "external_id": f"x{i}", "phone_number": f"+1555000{i:04d}"}
                 for i in range(50)])
    first.stop()
    again = start_sandbox(state_dir=tmp_path / "kept")
    bulk(again, [{"email": "P7@example.com", "first_name": "Seven"}, {"external_id": "x8", "first_name": "Eight"},
                 {"phone_number": "+15550000009", "first_name": "Nine"}])
    assert profile_count(again) == 50
    assert [p["first_name"] for p in found(again, "external_id", "x7")] == ["Seven"]
    assert [p["first_name"] for p in found(again, "email", "p8@example.com")] == ["Eight"]
    assert [p["external_id"] for p in found(again, "phone_number", "+15550000009")] == ["x9"]


def test_a_rolled_back_import_leaves_no_profile_its_rowids_later_hold(tmp_path):
    store = Store(tmp_path)
    plain = klaviyo.plain_profiles([{"attributes": {"email": "rolled@example.com"}}])
    with pytest.raises(RuntimeError):
        with store.tx() as db:
            new = klaviyo.all_new(db, profile_keys(store), plain)
            klaviyo.insert_new_profiles(db, profile_keys(store), plain, new, "2026-01-01T00:00:00Z")
            raise RuntimeError("the job fails after its insert")
    later = klaviyo.plain_profiles([{"attributes": {"email": "later@example.com"}}])
    with store.tx() as db:  # takes the rowid the rolled-back profile had
        new = klaviyo.all_new(db, profile_keys(store), later)
        klaviyo.insert_new_profiles(db, profile_keys(store), later, new, "2026-01-01T00:00:00Z")
        assert klaviyo.all_new(db, profile_keys(store), plain)
        assert not klaviyo.all_new(db, profile_keys(store), later)
        assert profile_keys(store).first_ids(db, "email", ["rolled@example.com", "later@example.com"]).keys() \
            == {"later@example.com"}
    store.close()


def test_memory_is_twelve_bytes_a_key():
    index = KeyIndex()
    index.add([f"k{i}" for i in range(1000)], np.arange(1000))
    assert index.nbytes == 12 * 1000


def plans_touching_profiles(db_path, statements: list[str]) -> dict[str, list[str]]:
    """Each executed statement that reads kl_profiles -> its query plan lines (SQLite's own EXPLAIN)."""
    import sqlite3
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    plans = {}
    for sql in statements:
        if "kl_profiles" in sql and sql.lstrip().lower().startswith(("select", "update", "delete", "with")):
            plans[sql] = [row[3] for row in db.execute(f"explain query plan {sql}")]
    db.close()
    return plans


def test_no_klaviyo_endpoint_reads_every_profile_to_find_one(sandbox):
    """Every statement that finds profiles goes to them by rowid or by id (a point search), never by a
    scan of kl_profiles or a range of its id index (which the identifier filters once were, after the
    SQLite identifier indexes went)."""
    store = sandbox.app.state.ctx.store
    statements: list[str] = []
    list_id = make_list(sandbox)
    bulk(sandbox, [{"email": f"u{i}@example.com", "external_id": f"x{i}", "phone_number": f"+1555000{i:04d}"}
                   for i in range(40)], list_id)
    with store.tx() as db:
        db.set_trace_callback(statements.append)
    bulk(sandbox, [{"email": "u1@example.com", "first_name": "One"}, {"external_id": "x2", "email": "two@example.com"}])
    for field, value in (("email", "u3@example.com"), ("phone_number", "+15550000004"), ("external_id", "x5")):
        assert len(found(sandbox, field, value)) == 1
    r = requests.get(f"{api(sandbox)}/profiles", params={"filter": 'any(external_id,["x6","x7","nope"])'}, headers=H)
    assert sorted(p["attributes"]["external_id"] for p in r.json()["data"]) == ["x6", "x7"]
    assert requests.post(f"{api(sandbox)}/profile-import", headers=H, json={"data": {"type": "profile", "attributes": {
        "external_id": "x8", "last_name": "Eight"}}}).status_code == 200
    subscription = {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "u9@example.com"}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": list_id}}}}}
    assert requests.post(f"{api(sandbox)}/profile-subscription-bulk-create-jobs", headers=H,
                         json=subscription).status_code == 202
    subscription["data"]["type"] = "profile-subscription-bulk-delete-job"
    assert requests.post(f"{api(sandbox)}/profile-subscription-bulk-delete-jobs", headers=H,
                         json=subscription).status_code == 202
    assert requests.post(f"{sandbox.base_url}/_sandbox/simulate/engagement", json={"seed": 1, "open_rate": 1}).ok
    bulk(sandbox, [{"external_id": "x10", "email": "moved@example.com"}])  # x10's events: its external id's
    bulk(sandbox, [{"email": "u10@example.com", "first_name": "New"}])  # profile, not this new owner of its email
    events = requests.get(f"{api(sandbox)}/events", params={"include": "profile", "page[size]": 200}, headers=H).json()
    assert "x10" in {p["attributes"]["external_id"] for p in events["included"] if p["type"] == "profile"}
    ids = {p["attributes"]["external_id"]: p["id"] for p in events["included"] if p["type"] == "profile"}
    with store.tx() as db:
        db.set_trace_callback(None)
        stored = dict(db.execute("select external_id, id from kl_profiles"))
    assert ids and all(stored[ext] == pid for ext, pid in ids.items())
    plans = plans_touching_profiles(store.path, statements)
    assert any("json_each" in sql for sql in plans)  # the identifier lookups were traced
    for sql, plan in plans.items():
        if "max(rowid)" in sql:
            assert plan == ["SEARCH kl_profiles"], plan  # the last rowid, at the end of the table's b-tree
            continue
        for line in plan:
            if "kl_profiles" in line or line.startswith(("SCAN p", "SEARCH p ")):
                assert "SCAN" not in line and "=?)" in line, (sql[:200], plan)


def test_a_lookup_added_after_the_index_changed_is_placed_again():
    """KeyIndex.add_found reuses where its lookup found each hash's place in the delta level only
    while that level is the one it searched."""
    index = KeyIndex(min_delta=1000)
    index.add([f"a{i}" for i in range(100)], range(100))
    found = index.lookup([f"b{i}" for i in range(100)])
    index.add([f"c{i}" for i in range(100)], range(100, 200))  # the delta changes between the lookup and its add
    index.add_found(found, range(200, 300))
    for prefix, first in (("a", 0), ("b", 200), ("c", 100)):
        assert sorted(index.candidates([f"{prefix}{i}" for i in range(100)]).tolist()) == list(range(first, first + 100))


def test_keys_whose_hashes_collide_are_new_unless_one_is_given_twice(tmp_path):
    """A job's keys sharing a hash are compared as texts: a collision keeps the job all-new, a key
    given twice (emails compared case-insensitively) does not."""
    store = Store(tmp_path)
    keys = ProfileKeys(key_hash=colliding)
    distinct = klaviyo.plain_profiles([{"attributes": {"email": "a@example.com"}}, {"attributes": {"email": "b@example.com"}}])
    twice = klaviyo.plain_profiles([{"attributes": {"email": "a@example.com"}}, {"attributes": {"email": "A@example.com"}}])
    with store.tx() as db:
        assert klaviyo.all_new(db, keys, distinct) is not None
        assert klaviyo.all_new(db, keys, twice) is None
    store.close()
