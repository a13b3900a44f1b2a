"""Klaviyo stand-in: how a bulk import merges profiles (within one job and with stored ones), its
identifier conflicts, and what a privacy deletion removes."""
from __future__ import annotations

import requests

from .conftest import KLAVIYO_HEADERS as H
from .test_klaviyo import api, bulk_body, make_list


def import_job(sandbox, profiles: list[dict], list_id: str | None = None, meta: dict | None = None) -> dict:
    body = bulk_body(profiles, list_id)
    if meta:
        for entry, extra in zip(body["data"]["attributes"]["profiles"]["data"], meta):
            if extra:
                entry["meta"] = extra
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=body, headers=H)
    assert r.status_code == 202, r.text
    return r.json()["data"]


def profile_by(sandbox, field: str, value: str) -> list[dict]:
    return requests.get(f'{api(sandbox)}/profiles?filter=equals({field},"{value}")', headers=H).json()["data"]


def test_one_job_naming_a_person_twice_makes_one_profile_merged_in_order(sandbox):
    job = import_job(sandbox, [
        {"email": "Twice@Example.com", "first_name": "A", "properties": {"tier": "gold", "score": 1}},
        {"email": "twice@example.com", "external_id": "t-1", "properties": {"score": 2, "tier": None}},
    ])
    assert (job["attributes"]["completed_count"], job["attributes"]["failed_count"]) == (2, 0)
    found = profile_by(sandbox, "external_id", "t-1")
    assert len(found) == 1 and profile_by(sandbox, "email", "twice@example.com")[0]["id"] == found[0]["id"]
    attrs = found[0]["attributes"]
    assert attrs["first_name"] == "A"  # omitted by the second row: kept
    assert attrs["properties"] == {"score": 2}  # null property removed, the other overwritten
    summary = requests.get(f"{sandbox.base_url}/_sandbox/summary").json()["klaviyo"]
    assert summary["profiles"] == 1


def test_identifiers_of_two_stored_profiles_are_a_per_profile_conflict_that_changes_nothing(sandbox):
    import_job(sandbox, [{"email": "one@example.com", "first_name": "One"}, {"external_id": "x-2", "first_name": "Two"}])
    job = import_job(sandbox, [{"email": "one@example.com", "external_id": "x-2", "first_name": "Both"},
                               {"email": "fine@example.com"}])
    assert (job["attributes"]["completed_count"], job["attributes"]["failed_count"]) == (1, 1)
    errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/import-errors", headers=H).json()["data"]
    assert [e["attributes"]["code"] for e in errors] == ["duplicate_profile"]
    assert errors[0]["attributes"]["source"]["pointer"] == "/data/attributes/profiles/data/0/attributes"
    assert profile_by(sandbox, "email", "one@example.com")[0]["attributes"]["first_name"] == "One"
    assert profile_by(sandbox, "external_id", "x-2")[0]["attributes"]["first_name"] == "Two"


def test_null_clears_omitted_keeps_and_patch_properties_unset_removes(sandbox):
    import_job(sandbox, [{"external_id": "m-1", "first_name": "F", "last_name": "L",
                          "properties": {"a": 1, "b": 2, "c": 3}}])
    job = import_job(sandbox, [{"external_id": "m-1", "last_name": None, "properties": {"a": 10}}],
                     meta=[{"patch_properties": {"unset": ["b"]}}])
    assert job["attributes"]["completed_count"] == 1
    attrs = profile_by(sandbox, "external_id", "m-1")[0]["attributes"]
    assert attrs["first_name"] == "F" and "last_name" not in attrs
    assert attrs["properties"] == {"a": 10, "c": 3}
    bad = import_job(sandbox, [{"external_id": "m-1", "first_name": "G"}], meta=[{"patch_properties": {"unset": []}}])
    assert bad["attributes"]["failed_count"] == 1
    assert profile_by(sandbox, "external_id", "m-1")[0]["attributes"]["first_name"] == "F"


def test_privacy_deletion_takes_the_profile_out_of_every_list_and_leaves_the_others(sandbox):
    first, second = make_list(sandbox, "first"), make_list(sandbox, "second")
    for list_id in (first, second):
        import_job(sandbox, [{"email": "gone@example.com"}, {"email": "stays@example.com"}], list_id)
    delete = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {
        "type": "profile", "attributes": {"email": "gone@example.com"}}}}}}
    assert requests.post(f"{api(sandbox)}/data-privacy-deletion-jobs", json=delete, headers=H).status_code == 202
    summary = requests.get(f"{sandbox.base_url}/_sandbox/summary").json()["klaviyo"]
    assert summary == {"profiles": 1, "lists": {"first": 1, "second": 1}}
    for list_id in (first, second):
        members = requests.get(f"{api(sandbox)}/lists/{list_id}/profiles", headers=H).json()["data"]
        assert [m["attributes"]["email"] for m in members] == ["stays@example.com"]


def test_profiles_created_earlier_in_the_same_job_are_matched_merged_and_conflict_like_stored_ones(sandbox):
    job = import_job(sandbox, [
        {"email": "a@example.com", "first_name": "A"},                                     # 0: new
        {"external_id": "b-1", "first_name": "B"},                                         # 1: new
        {"email": "A@Example.com", "phone_number": "+15550001111", "last_name": "Ay"},    # 2: into 0, adds a phone
        {"email": "a@example.com", "external_id": "b-1", "first_name": "Both"},            # 3: 0 and 1: a conflict
        {"phone_number": "+15550001111", "properties": {"p": 1}},                          # 4: into 0 by that phone
        {"external_id": "c-1"},                                                            # 5: new
    ])
    assert (job["attributes"]["completed_count"], job["attributes"]["failed_count"]) == (5, 1)
    errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/import-errors", headers=H).json()["data"]
    assert [(e["attributes"]["code"], e["attributes"]["source"]["pointer"]) for e in errors] == [
        ("duplicate_profile", "/data/attributes/profiles/data/3/attributes")]
    a, b, c = (profile_by(sandbox, f, v) for f, v in (("email", "a@example.com"), ("external_id", "b-1"),
                                                     ("external_id", "c-1")))
    assert (len(a), len(b), len(c)) == (1, 1, 1)
    assert requests.get(f"{sandbox.base_url}/_sandbox/summary").json()["klaviyo"]["profiles"] == 3
    related = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/relationships/profiles",
                           headers=H).json()["data"]
    assert [p["id"] for p in related] == [a[0]["id"], b[0]["id"], a[0]["id"], a[0]["id"], c[0]["id"]]
    attrs = a[0]["attributes"]
    assert (attrs["email"], attrs["first_name"], attrs["last_name"], attrs["phone_number"], attrs["properties"]) == (
        "A@Example.com", "A", "Ay", "+15550001111", {"p": 1})
    assert b[0]["attributes"]["first_name"] == "B" and "phone_number" not in b[0]["attributes"]
