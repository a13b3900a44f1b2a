"""Klaviyo stand-in: auth, lists, bulk import jobs, membership, subscriptions, limits."""
from __future__ import annotations

import requests

from .conftest import KLAVIYO_HEADERS as H


def api(sandbox) -> str:
    return f"{sandbox.base_url}/klaviyo/api"


def make_list(sandbox, name: str = "welcome") -> str:
    r = requests.post(f"{api(sandbox)}/lists", json={"data": {"type": "list", "attributes": {"name": name}}},
                      headers=H)
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def bulk_body(profiles: list[dict], list_id: str | None = None) -> dict:
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": p} for p in profiles]}}}}
    if list_id:
        body["data"]["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return body


def test_auth_forms_and_revision(sandbox):
    url = f"{api(sandbox)}/lists"
    assert requests.get(url, headers=H).status_code == 200
    assert requests.get(url, headers={**H, "Authorization": "Bearer test-token"}).status_code == 200
    wrong = requests.get(url, headers={**H, "Authorization": "Klaviyo-API-Key nope"})
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "authentication_failed"
    missing = requests.get(url, headers={"revision": "2026-07-15"})
    assert missing.status_code == 401 and missing.json()["errors"][0]["code"] == "not_authenticated"
    no_revision = requests.get(url, headers={"Authorization": H["Authorization"]})
    assert no_revision.status_code == 400
    assert no_revision.json()["errors"][0]["source"]["parameter"] == "revision"


def test_bulk_import_adds_to_list_and_reports_per_profile_errors(sandbox):
    list_id = make_list(sandbox)
    profiles = [{"email": f"p{i}@example.com", "external_id": f"id{i}", "first_name": "P"} for i in range(30)]
    profiles += [{"email": "not-an-email"}, {"phone_number": "5550006"}, {"first_name": "no identifier"}]
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body(profiles, list_id), headers=H)
    assert r.status_code == 202, r.text
    job = r.json()["data"]
    assert job["attributes"]["status"] == "complete"
    assert (job["attributes"]["total_count"], job["attributes"]["completed_count"],
            job["attributes"]["failed_count"]) == (33, 30, 3)
    assert job["relationships"]["lists"]["data"] == [{"type": "list", "id": list_id}]

    errors = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/import-errors", headers=H).json()
    pointers = sorted(e["attributes"]["source"]["pointer"] for e in errors["data"])
    assert pointers == ["/data/attributes/profiles/data/30/attributes/email",
                        "/data/attributes/profiles/data/31/attributes/phone_number",
                        "/data/attributes/profiles/data/32/attributes"]
    assert all(e["type"] == "import-error" and "original_payload" in e["attributes"] for e in errors["data"])

    ids = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/relationships/profiles"
                       "?page[size]=100", headers=H).json()["data"]
    assert len(ids) == 30 and all(len(i["id"]) == 26 for i in ids)

    seen, url = [], f"{api(sandbox)}/lists/{list_id}/profiles?page[size]=7"
    while url:
        page = requests.get(url, headers=H).json()
        seen += [p["attributes"]["email"] for p in page["data"]]
        url = page["links"]["next"]
    assert sorted(seen) == sorted(p["email"] for p in profiles[:30])


def test_reimport_matches_existing_profiles_by_identifier(sandbox):
    first = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs",
                          json=bulk_body([{"email": "A@Example.com", "first_name": "A"}]), headers=H).json()
    second = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs",
                           json=bulk_body([{"email": "a@example.com", "external_id": "42", "first_name": None}]),
                           headers=H).json()
    ids = [requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{j['data']['id']}/relationships/profiles",
                        headers=H).json()["data"][0]["id"] for j in (first, second)]
    assert ids[0] == ids[1]
    found = requests.get(f'{api(sandbox)}/profiles?filter=equals(external_id,"42")', headers=H).json()["data"]
    assert [p["id"] for p in found] == [ids[0]]
    assert "first_name" not in found[0]["attributes"]  # null cleared it


def test_batch_limits_give_klaviyo_errors_and_change_nothing(sandbox):
    list_id = make_list(sandbox)
    too_many = bulk_body([{"email": f"x{i}@e.com"} for i in range(10_001)], list_id)
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=too_many, headers=H)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "invalid" and "10,000" in r.json()["errors"][0]["detail"]
    huge = bulk_body([{"email": f"x{i}@e.com", "properties": {"blob": "x" * 90_000}} for i in range(60)], list_id)
    assert requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=huge, headers=H).status_code == 413
    rel = {"data": [{"type": "profile", "id": f"01{i:024d}"} for i in range(1001)]}
    r = requests.post(f"{api(sandbox)}/lists/{list_id}/relationships/profiles", json=rel, headers=H)
    assert r.status_code == 400
    summary = requests.get(f"{sandbox.base_url}/_sandbox/summary").json()["klaviyo"]
    assert summary == {"profiles": 0, "lists": {"welcome": 0}}


def test_list_filter_membership_and_unknown_list(sandbox):
    welcome, other = make_list(sandbox, "welcome"), make_list(sandbox, "win_back")
    found = requests.get(f'{api(sandbox)}/lists?filter=equals(name,"welcome")', headers=H).json()["data"]
    assert [x["id"] for x in found] == [welcome]
    job = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs",
                        json=bulk_body([{"email": "a@e.com"}, {"email": "b@e.com"}]), headers=H).json()["data"]
    ids = [x["id"] for x in requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/relationships/"
                                         "profiles", headers=H).json()["data"]]
    rel = {"data": [{"type": "profile", "id": i} for i in ids]}
    assert requests.post(f"{api(sandbox)}/lists/{other}/relationships/profiles", json=rel, headers=H).status_code == 204
    assert requests.delete(f"{api(sandbox)}/lists/{other}/relationships/profiles",
                           json={"data": rel["data"][:1]}, headers=H).status_code == 204
    members = requests.get(f"{api(sandbox)}/lists/{other}/profiles", headers=H).json()["data"]
    assert [m["id"] for m in members] == ids[1:]
    missing = requests.get(f"{api(sandbox)}/lists/NOPE/profiles", headers=H)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"
    assert requests.get(f"{api(sandbox)}/lists/{other}/profiles?page[size]=101", headers=H).status_code == 400


def subscription_body(kind: str, emails: list[str], list_id: str | None) -> dict:
    consent = "SUBSCRIBED" if kind == "create" else "UNSUBSCRIBED"
    body = {"data": {"type": f"profile-subscription-bulk-{kind}-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": e, "subscriptions": {"email": {"marketing": {"consent": consent}}}}}
        for e in emails]}}}}
    if list_id:
        body["data"]["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return body


def consent_of(sandbox, email: str) -> str:
    p = requests.get(f'{api(sandbox)}/profiles?filter=equals(email,"{email}")', headers=H).json()["data"][0]
    return p["attributes"]["subscriptions"]["email"]["marketing"]["consent"]


def test_unsubscribing_a_profile_not_in_the_list_unsubscribes_it_globally(sandbox):
    welcome, other = make_list(sandbox, "welcome"), make_list(sandbox, "other")
    r = requests.post(f"{api(sandbox)}/profile-subscription-bulk-create-jobs",
                      json=subscription_body("create", ["in@e.com", "out@e.com"], welcome), headers=H)
    assert r.status_code == 202
    assert consent_of(sandbox, "in@e.com") == "SUBSCRIBED"
    requests.post(f"{api(sandbox)}/profile-subscription-bulk-delete-jobs",
                  json=subscription_body("delete", ["in@e.com"], welcome), headers=H)
    assert consent_of(sandbox, "in@e.com") == "SUBSCRIBED"  # only left the list
    requests.post(f"{api(sandbox)}/profile-subscription-bulk-delete-jobs",
                  json=subscription_body("delete", ["out@e.com"], other), headers=H)
    assert consent_of(sandbox, "out@e.com") == "UNSUBSCRIBED"  # the trap: global
    too_many = subscription_body("delete", [f"u{i}@e.com" for i in range(101)], welcome)
    assert requests.post(f"{api(sandbox)}/profile-subscription-bulk-delete-jobs", json=too_many,
                         headers=H).status_code == 400


def test_profile_import_and_privacy_deletion(sandbox):
    body = {"data": {"type": "profile", "attributes": {"email": "d@e.com", "phone_number": "+15005550006"}}}
    assert requests.post(f"{api(sandbox)}/profile-import", json=body, headers=H).status_code == 201
    assert requests.post(f"{api(sandbox)}/profile-import", json=body, headers=H).status_code == 200
    bad = {"data": {"type": "profile", "attributes": {"phone_number": "555-0006"}}}
    r = requests.post(f"{api(sandbox)}/profile-import", json=bad, headers=H)
    assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"].endswith("phone_number")
    delete = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {"data": {
        "type": "profile", "attributes": {"email": "d@e.com"}}}}}}
    assert requests.post(f"{api(sandbox)}/data-privacy-deletion-jobs", json=delete, headers=H).status_code == 202
    assert requests.get(f'{api(sandbox)}/profiles?filter=equals(email,"d@e.com")', headers=H).json()["data"] == []


def test_job_reads_queued_until_the_configured_delay(start_sandbox):
    sandbox = start_sandbox(klaviyo_job_delay_s=30)
    job = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body([{"email": "q@e.com"}]),
                        headers=H).json()["data"]
    assert job["attributes"]["status"] == "queued"
    again = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}", headers=H).json()["data"]
    assert again["attributes"]["status"] == "queued"


def test_rate_limit_headers_then_429_with_retry_after(start_sandbox):
    sandbox = start_sandbox(limit_overrides={"klaviyo:L": [(3, 1), (100, 60)]})
    answers = [requests.get(f"{api(sandbox)}/lists", headers=H) for _ in range(6)]
    ok = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert ok and limited
    assert ok[0].headers["RateLimit-Limit"] == "3" and "RateLimit-Reset" in ok[0].headers
    assert int(ok[0].headers["RateLimit-Remaining"]) == 2
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "RateLimit-Remaining" not in limited[0].headers
    assert limited[0].json()["errors"][0]["code"] == "throttled"


def test_daily_list_creation_limit(start_sandbox):
    sandbox = start_sandbox(klaviyo_lists_per_day=2)
    make_list(sandbox, "a"), make_list(sandbox, "b")
    r = requests.post(f"{api(sandbox)}/lists", json={"data": {"type": "list", "attributes": {"name": "c"}}},
                      headers=H)
    assert r.status_code == 429 and "daily limit" in r.json()["errors"][0]["detail"]


def test_malformed_bodies_are_rejected_clearly_and_store_nothing(sandbox):
    url = f"{api(sandbox)}/profile-bulk-import-jobs"
    broken = requests.post(url, data=b'{"data": {"type": "profile-bulk', headers=H)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["errors"][0]["detail"]
    no_profiles = requests.post(url, json={"data": {"type": "profile-bulk-import-job", "attributes": {}}}, headers=H)
    assert no_profiles.status_code == 400
    assert no_profiles.json()["errors"][0]["source"]["pointer"] == "/data/attributes/profiles/data"
    unknown_list = requests.post(url, json=bulk_body([{"email": "a@e.com"}], "NOLIST"), headers=H)
    assert unknown_list.status_code == 404
    assert requests.get(f"{sandbox.base_url}/_sandbox/summary").json()["klaviyo"]["profiles"] == 0


def test_job_lists_relationship(sandbox):
    list_id = make_list(sandbox)
    job = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body([{"email": "a@e.com"}], list_id),
                        headers=H).json()["data"]
    related = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/lists", headers=H).json()["data"]
    assert [x["attributes"]["name"] for x in related] == ["welcome"]
    ids = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/relationships/lists", headers=H).json()
    assert ids["data"] == [{"type": "list", "id": list_id}]
    profiles = requests.get(f"{api(sandbox)}/profile-bulk-import-jobs/{job['id']}/profiles", headers=H).json()["data"]
    assert [p["attributes"]["email"] for p in profiles] == ["a@e.com"]


def test_profile_size_limit_counts_utf8_bytes_and_text_round_trips(sandbox):
    """A profile is stored as UTF-8 JSON: the 100 KB per-profile limit counts its bytes (45,000
    two-byte characters are ~90,000 bytes, fine; 60,000 are ~120,000, an import-error), and
    non-ASCII text reads back unchanged."""
    list_id = make_list(sandbox)
    fits = {"email": "fits@example.com", "first_name": "Zoë", "properties": {"note": "é" * 45_000}}
    over = {"email": "over@example.com", "properties": {"note": "é" * 60_000}}
    r = requests.post(f"{api(sandbox)}/profile-bulk-import-jobs", json=bulk_body([fits, over], list_id), headers=H)
    job = r.json()["data"]["attributes"]
    assert (job["completed_count"], job["failed_count"]) == (1, 1)
    [member] = requests.get(f"{api(sandbox)}/lists/{list_id}/profiles", headers=H).json()["data"]
    assert member["attributes"]["first_name"] == "Zoë" and member["attributes"]["properties"] == fits["properties"]
