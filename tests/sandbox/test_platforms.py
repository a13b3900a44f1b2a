"""Mailchimp, Braze, Twilio, Meta, Google, TikTok: auth per platform, batch limits, per-record errors
in each platform's own shape, and reading back what was written."""
from __future__ import annotations

import hashlib
import json

import pytest
import requests

from .conftest import TOKEN

SHA = hashlib.sha256(b"a@example.com").hexdigest()
ACCOUNT = "AC" + "0" * 32


def google_body(members: list[dict]) -> dict:
    return {"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1"},
                              "productDestinationId": "777"}],
            "audienceMembers": members, "encoding": "HEX",
            "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
            "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}}


def call(sandbox, platform: str, token: str) -> requests.Response:
    b = sandbox.base_url
    if platform == "mailchimp":
        return requests.get(f"{b}/mailchimp/3.0/lists/l1/members", auth=("anyone", f"{token}-us1"))
    if platform == "braze":
        return requests.post(f"{b}/braze/users/track", headers={"Authorization": f"Bearer {token}"},
                             json={"attributes": [{"external_id": "u1"}]})
    if platform == "twilio":
        return requests.get(f"{b}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json", auth=(ACCOUNT, token))
    if platform == "meta":
        return requests.post(f"{b}/meta/v25.0/123/users", data={
            "access_token": token, "payload": json.dumps({"schema": "EMAIL_SHA256", "data": [SHA]})})
    if platform == "google":
        return requests.post(f"{b}/google/v1/audienceMembers:ingest", headers={"Authorization": f"Bearer {token}"},
                             json=google_body([{"userData": {"userIdentifiers": [{"emailAddress": SHA}]}}]))
    if platform == "tiktok":
        return requests.post(f"{b}/tiktok/open_api/v1.3/dmp/custom_audience/create/",
                             headers={"Access-Token": token}, json={})
    raise AssertionError(platform)


REJECTIONS = {  # platform -> (status, check of the body)
    "mailchimp": (401, lambda b: b["title"] == "API Key Invalid" and b["status"] == 401),
    "braze": (401, lambda b: "Invalid API key" in b["message"]),
    "twilio": (401, lambda b: b["code"] == 20003),
    "meta": (400, lambda b: b["error"]["code"] == 190 and b["error"]["type"] == "OAuthException"),
    "google": (401, lambda b: b["error"]["status"] == "UNAUTHENTICATED"),
    "tiktok": (200, lambda b: b["code"] == 40105),
}


@pytest.mark.parametrize("platform", sorted(REJECTIONS))
def test_auth_accepted_in_own_form_and_rejected_as_the_platform_would(sandbox, platform):
    accepted = call(sandbox, platform, TOKEN)
    assert accepted.status_code < 300, accepted.text
    if platform == "tiktok":
        assert accepted.json()["code"] != 40105
    rejected = call(sandbox, platform, "wrong-token")
    status, check = REJECTIONS[platform]
    assert rejected.status_code == status and check(rejected.json()), rejected.text


def test_mailchimp_batch_errors_and_read_back(sandbox):
    url, auth = f"{sandbox.base_url}/mailchimp/3.0/lists/l1", ("x", TOKEN)
    batch = {"members": [{"email_address": "a@example.com", "status": "subscribed", "merge_fields": {"FNAME": "A"}},
                         {"email_address": "broken", "status": "subscribed"}], "update_existing": False}
    r = requests.post(url, json=batch, auth=auth).json()
    assert (r["total_created"], r["error_count"]) == (1, 1)
    assert r["errors"][0]["error_code"] == "ERROR_GENERIC"
    again = requests.post(url, json=batch, auth=auth).json()
    assert {e["error_code"] for e in again["errors"]} == {"ERROR_CONTACT_EXISTS", "ERROR_GENERIC"}
    too_big = {"members": [{"email_address": f"m{i}@e.com", "status": "subscribed"} for i in range(501)]}
    r = requests.post(url, json=too_big, auth=auth)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    member_hash = hashlib.md5(b"a@example.com").hexdigest()
    got = requests.get(f"{url}/members/{member_hash}", auth=auth).json()
    assert got["merge_fields"] == {"FNAME": "A"} and got["status"] == "subscribed"
    put = requests.put(f"{url}/members/{member_hash}", json={"email_address": "a@example.com",
                                                             "status": "unsubscribed"}, auth=auth)
    assert put.json()["status"] == "unsubscribed"
    listed = requests.get(f"{url}/members?count=10", auth=auth).json()
    assert listed["total_items"] == 1 and listed["members"][0]["status"] == "unsubscribed"


def test_braze_limits_and_non_fatal_errors(sandbox):
    url, headers = f"{sandbox.base_url}/braze/users/track", {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(url, headers=headers, json={"attributes": [{"external_id": "u1", "email": "bad"},
                                                                 {"external_id": "u2", "phone": "+15043277269"}]})
    body = r.json()
    assert r.status_code == 201 and body["message"] == "success" and body["attributes_processed"] == 1
    assert body["errors"] == [{"type": "Invalid 'email' value", "input_array": "attributes", "index": 0}]
    assert all(h in r.headers for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"))
    too_many = {"attributes": [{"external_id": f"u{i}"} for i in range(76)]}
    assert requests.post(url, headers=headers, json=too_many).status_code == 400
    users = requests.post(f"{sandbox.base_url}/braze/users/export/ids", headers=headers,
                          json={"external_ids": ["u1", "u2"]}).json()["users"]
    assert [u["external_id"] for u in users] == ["u2"]
    mixed = {"external_ids": ["u2"], "email_addresses": ["a@example.com"]}
    assert requests.post(f"{sandbox.base_url}/braze/users/delete", headers=headers, json=mixed).status_code == 400
    deleted = requests.post(f"{sandbox.base_url}/braze/users/delete", headers=headers, json={"external_ids": ["u2"]})
    assert deleted.json()["deleted"] == 1


def test_twilio_validation_optout_and_read_back(sandbox):
    url, auth = f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json", (ACCOUNT, TOKEN)
    ok = requests.post(url, auth=auth, data={"To": "+15005550006", "From": "+15005550001", "Body": "hi"})
    assert ok.status_code == 201 and ok.json()["status"] == "queued" and ok.json()["sid"].startswith("SM")
    bad_to = requests.post(url, auth=auth, data={"To": "555", "From": "+15005550001", "Body": "hi"})
    assert bad_to.status_code == 400 and bad_to.json()["code"] == 21211
    long = requests.post(url, auth=auth, data={"To": "+15005550006", "From": "+15005550001", "Body": "x" * 1601})
    assert long.json()["code"] == 21617
    requests.post(f"{sandbox.base_url}/_sandbox/twilio/inbound", data={"From": "+15005550009", "Body": "STOP"})
    opted = requests.post(url, auth=auth, data={"To": "+15005550009", "From": "+15005550001", "Body": "hi"})
    assert opted.status_code == 400 and opted.json()["code"] == 21610
    listed = requests.get(url, auth=auth).json()["messages"]
    assert [m["sid"] for m in listed] == [ok.json()["sid"]]
    other_account = requests.get(url, auth=("AC" + "1" * 32, TOKEN))
    assert other_account.status_code == 401


def test_meta_limits_invalid_entries_and_replace_session(sandbox):
    base = f"{sandbox.base_url}/meta/v24.0/900"
    rows = [hashlib.sha256(f"u{i}@e.com".encode()).hexdigest() for i in range(5)]
    r = requests.post(f"{base}/users", data={"access_token": TOKEN, "payload": json.dumps(
        {"schema": ["EMAIL", "EXTERN_ID"], "data": [[h, f"p{i}"] for i, h in enumerate(rows)] + [["raw@x.com", "p9"]]})})
    body = r.json()
    assert (body["num_received"], body["num_invalid_entries"]) == (6, 1) and len(body["invalid_entry_samples"]) == 1
    big = {"access_token": TOKEN, "payload": json.dumps({"schema": "EMAIL_SHA256", "data": [SHA] * 10_001})}
    r = requests.post(f"{base}/users", data=big)
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    for seq, last in ((1, False), (2, True)):
        requests.post(f"{base}/usersreplace", data={"access_token": TOKEN, "session": json.dumps(
            {"session_id": 55, "batch_seq": seq, "last_batch_flag": last}),
            "payload": json.dumps({"schema": "EMAIL_SHA256", "data": [rows[seq]]})})
    held = requests.get(f"{sandbox.base_url}/_sandbox/meta/audiences").json()["audiences"]["900"]
    assert held["count"] == 2 and sorted(held["members"]) == sorted([rows[1], rows[2]])
    removed = requests.delete(f"{base}/users", params={"access_token": TOKEN, "payload": json.dumps(
        {"schema": "EMAIL_SHA256", "data": [rows[1]]})})
    assert removed.status_code == 200
    assert requests.get(f"{sandbox.base_url}/_sandbox/meta/audiences").json()["audiences"]["900"]["count"] == 1


def test_google_rejects_bad_members_with_field_violations_and_applies_nothing(sandbox):
    url, headers = f"{sandbox.base_url}/google/v1/audienceMembers:ingest", {"Authorization": f"Bearer {TOKEN}"}
    good = {"userData": {"userIdentifiers": [{"emailAddress": SHA}]}}
    bad = {"userData": {"userIdentifiers": [{"emailAddress": "a@example.com"}]}}
    r = requests.post(url, headers=headers, json=google_body([good, bad]))
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    violations = r.json()["error"]["details"][0]["fieldViolations"]
    assert violations[0]["field"] == "audience_members[1].user_data.user_identifiers[0].emailAddress"
    assert requests.get(f"{sandbox.base_url}/_sandbox/google/audiences").json()["audiences"] == {}
    assert requests.post(url, headers=headers, json=google_body([good] * 10_001)).status_code == 400
    assert requests.post(url, headers=headers, json=google_body([good])).json()["requestId"]
    remove = f"{sandbox.base_url}/google/v1/audienceMembers:remove"
    requests.post(remove, headers=headers, json=google_body([good]))
    assert requests.get(f"{sandbox.base_url}/_sandbox/google/audiences").json()["audiences"]["777"]["count"] == 0


def test_tiktok_upload_signature_hashing_and_minimum_size(start_sandbox):
    sandbox = start_sandbox(tiktok_min_audience=2)
    base, headers = f"{sandbox.base_url}/tiktok/open_api/v1.3/dmp/custom_audience", {"Access-Token": TOKEN}

    def upload(lines: list[str], signature: str | None = None) -> dict:
        content = "\n".join(lines).encode()
        return requests.post(f"{base}/file/upload/", headers=headers, files={"file": ("ids.csv", content)}, data={
            "advertiser_id": "1", "calculate_type": "EMAIL_SHA256",
            "file_signature": signature or hashlib.md5(content).hexdigest()}).json()

    hashes = [hashlib.sha256(f"u{i}@e.com".encode()).hexdigest() for i in range(3)]
    assert upload(hashes, signature="0" * 32)["code"] == 40001
    assert upload(["raw@e.com"])["code"] == 40062
    path = upload(hashes)["data"]["file_path"]
    created = requests.post(f"{base}/create/", headers=headers, json={
        "advertiser_id": "1", "custom_audience_name": "win_back", "file_paths": [path],
        "calculate_type": "EMAIL_SHA256"}).json()
    audience = created["data"]["custom_audience_id"]
    two = upload(hashes[:2])["data"]["file_path"]
    shrink = requests.post(f"{base}/update/", headers=headers, json={
        "advertiser_id": "1", "custom_audience_id": audience, "file_paths": [two], "action": "REMOVE"}).json()
    assert shrink["code"] == 40001 and "minimum" in shrink["message"]
    held = requests.get(f"{sandbox.base_url}/_sandbox/tiktok/audiences").json()["audiences"][audience]
    assert held["count"] == 3 and held["name"] == "win_back"


def test_malformed_json_gets_each_platforms_error_and_stores_nothing(sandbox):
    b = sandbox.base_url
    mc = requests.post(f"{b}/mailchimp/3.0/lists/l1", data=b"{oops", auth=("x", TOKEN))
    assert mc.status_code == 400 and mc.json()["title"] == "JSON Parse Error"
    bz = requests.post(f"{b}/braze/users/track", data=b"{oops", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bz.status_code == 400 and "message" in bz.json()
    gg = requests.post(f"{b}/google/v1/audienceMembers:ingest", data=b"{oops",
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert gg.status_code == 400 and gg.json()["error"]["status"] == "INVALID_ARGUMENT"
    mt = requests.post(f"{b}/meta/v25.0/5/users", data={"access_token": TOKEN, "payload": "{oops"})
    assert mt.status_code == 400 and mt.json()["error"]["code"] == 100
    summary = requests.get(f"{b}/_sandbox/summary").json()
    assert summary["mailchimp"] == {"lists": {}} and summary["braze"] == {"users": 0}
    assert summary["google"] == {"audiences": {}} and summary["meta"] == {"audiences": {}}
