"""TikTok customer-file audiences against the sandbox and a real DuckDB warehouse: files of email
SHA-256 hashes with their MD5 signature, APPEND/REMOVE updates, the 1,000-member rule as a clear
error with nothing marked, 40100 and 503 retried, rejections, auth and config errors, forget()."""
from __future__ import annotations

import hashlib
import json

import pytest
import requests
from ads_helpers import TOKEN, assert_no_raw_pii, converges_under_faults, held, record, sha, state, write_config
from sync_helpers import people, set_audience

from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync
from syncs.erasure import forget_one

ENV = {"TIKTOK_TOKEN": TOKEN}
ADVERTISER = "7000000001"
SEEDS = [sha(f"seed{i}@example.com") for i in range(1_000)]  # an audience already at TikTok's minimum


def create_audience(base_url: str, seeds: list[str]) -> str:
    """What a marketer does once in Ads Manager: an EMAIL_SHA256 customer-file audience."""
    base, headers = f"{base_url}/tiktok/open_api/v1.3/dmp/custom_audience", {"Access-Token": TOKEN}
    content = ("\n".join(seeds) + "\n").encode()
    upload = requests.post(f"{base}/file/upload/", headers=headers, timeout=30, files={"file": ("seed.csv", content)},
                           data={"advertiser_id": ADVERTISER, "calculate_type": "EMAIL_SHA256",
                                 "file_signature": hashlib.md5(content).hexdigest()}).json()
    created = requests.post(f"{base}/create/", headers=headers, timeout=30, json={
        "advertiser_id": ADVERTISER, "custom_audience_name": "lifeline cart", "calculate_type": "EMAIL_SHA256",
        "file_paths": [upload["data"]["file_path"]]}).json()
    return created["data"]["custom_audience_id"]


def sync_for(tmp_path, base_url: str, audience_id: str):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "tiktok_cart", (
        f'{{type: tiktok, advertiser_id: "{ADVERTISER}", audience_id: "{audience_id}", base_url: "{base_url}/tiktok",'
        " api_key_env: TIKTOK_TOKEN, client_rate_limits: false}")))
    return sync


def emails(members: list[dict]) -> set[str]:
    return {sha(m["email"].strip().lower()) for m in members}


def uploaded_files(received) -> list[tuple[bytes, dict]]:
    """(file content, form fields) of every upload the sandbox received, parsed as multipart."""
    out = []
    for r in received:
        if not r.path.endswith("/file/upload/"):
            continue
        boundary = r.body.split(b"\r\n", 1)[0]
        fields, content = {}, b""
        for part in r.body.split(boundary)[1:-1]:
            head, _, value = part[2:-2].partition(b"\r\n\r\n")  # between "\r\n" after and before the boundary
            name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
            if b"filename=" in head:
                content = value
            else:
                fields[name] = value.decode()
        out.append((content, fields))
    return out


def test_appends_hashed_files_with_signature_and_rerun_sends_nothing(duck_warehouse, sandbox, tmp_path):
    audience = create_audience(sandbox.base_url, SEEDS)
    members = [dict(m, phone=f"+4420794600{i:02d}", last_name="Smithson") for i, m in enumerate(people(20))] \
        + [{"profile_id": "p_upper", "email": "  Mixed.Case@Example.COM "}] + people(3, start=90, is_holdout=True)
    set_audience(duck_warehouse, members)
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url, audience)
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds) == ("success", 21)
    sent = [m for m in members if not m.get("is_holdout")]
    assert held(sandbox.base_url, "tiktok", audience) == set(SEEDS) | emails(sent)
    assert sha("mixed.case@example.com") in held(sandbox.base_url, "tiktok", audience)
    [(content, fields)] = uploaded_files(wire.to("tiktok"))
    assert fields["file_signature"] == hashlib.md5(content).hexdigest() and fields["calculate_type"] == "EMAIL_SHA256"
    assert sorted(content.decode().split()) == sorted(emails(sent))
    [update] = [json.loads(r.body) for r in wire.to("tiktok") if r.path.endswith("/update/")]
    assert (update["action"], update["custom_audience_id"]) == ("APPEND", audience)
    wire.seen.clear()
    second = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (second.status, second.adds, second.updates, second.removes) == ("success", 0, 0, 0)
    assert wire.seen == []
    changed = [dict(sent[0], email="renamed@example.com")] + sent[1:17]
    set_audience(duck_warehouse, changed)
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (third.status, third.updates, third.removes) == ("success", 1, 4)
    assert held(sandbox.base_url, "tiktok", audience) == set(SEEDS) | emails(changed)
    outcome = forget_one(sync, [{"key": "p_00005", "email": "person5@example.com", "phone": None,
                                 "destination_id": None}], ENV)
    assert outcome.status == "deleted" and sha("person5@example.com") not in held(sandbox.base_url, "tiktok", audience)
    nothing = forget_one(sync, [{"key": "x", "email": None, "phone": "+15550001111", "destination_id": None}], ENV)
    assert nothing.status == "failed" and "no_identifier" in nothing.detail
    assert_no_raw_pii(wire.to("tiktok"), members + changed)


def test_files_never_exceed_50000_lines(duck_warehouse, sandbox, tmp_path):
    audience = create_audience(sandbox.base_url, SEEDS)
    wire = record(sandbox)
    sync = sync_for(tmp_path, sandbox.base_url, audience)
    set_audience(duck_warehouse, people(50_500))
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).adds == 50_500
    # REMOVE files are cut by the same code (_drop) as APPEND files
    lines = sorted(len(content.split()) for content, _ in uploaded_files(wire.to("tiktok")))
    assert lines == [500, 50_000]
    assert len(held(sandbox.base_url, "tiktok", audience)) == 51_500


def test_the_1000_member_rule_is_a_clear_error_and_nothing_is_marked(duck_warehouse, sandbox, tmp_path):
    small = create_audience(sandbox.base_url, SEEDS[:5])
    set_audience(duck_warehouse, people(10))
    grow = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url, small), env=ENV, progress=False)
    assert grow.status == "failed" and "1,000 members or more" in grow.message and "APPEND 10" in grow.message
    assert state(duck_warehouse, "sync_state", "key") == []
    assert held(sandbox.base_url, "tiktok", small) == set(SEEDS[:5])
    # an audience at the minimum: members can be added, but not removed below 1,000
    edge = create_audience(sandbox.base_url, SEEDS[:995])
    sync = sync_for(tmp_path, sandbox.base_url, edge)
    assert run_sync(duck_warehouse, sync, env=ENV, progress=False).adds == 10
    set_audience(duck_warehouse, people(4))
    shrink = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert shrink.status == "failed" and "REMOVE 6" in shrink.message and "1,000" in shrink.message
    assert len(state(duck_warehouse, "sync_state", "key")) == 10  # the 6 are still recorded as members
    assert held(sandbox.base_url, "tiktok", edge) == set(SEEDS[:995]) | emails(people(10))


def test_40100_and_503_are_retried_and_the_sync_converges(duck_warehouse, sandbox, tmp_path):
    audience = create_audience(sandbox.base_url, SEEDS)
    sync = sync_for(tmp_path, sandbox.base_url, audience)
    converges_under_faults(duck_warehouse, sandbox, sync, ENV, "tiktok", seed=5)
    assert held(sandbox.base_url, "tiktok", audience) == set(SEEDS) | emails(people(20))


def test_rows_without_a_usable_email_are_rejected(duck_warehouse, sandbox, tmp_path):
    audience = create_audience(sandbox.base_url, SEEDS)
    set_audience(duck_warehouse, people(3) + [{"profile_id": "p_phone_only", "email": None, "phone": "+15550001111"},
                                              {"profile_id": "p_bad", "email": "two@@example.com"}])
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url, audience), env=ENV, progress=False)
    assert (result.status, result.adds, result.rejections) == ("success", 3, 2)
    assert state(duck_warehouse, "rejections", "key, code") == [("p_bad", "invalid_email"),
                                                                 ("p_phone_only", "no_identifier")]


def test_wrong_token_and_missing_secret_name_the_variable(duck_warehouse, sandbox, tmp_path):
    audience = create_audience(sandbox.base_url, SEEDS)
    sync = sync_for(tmp_path, sandbox.base_url, audience)
    set_audience(duck_warehouse, people(3))
    wrong = run_sync(duck_warehouse, sync, env={"TIKTOK_TOKEN": "x"}, progress=False)
    assert wrong.status == "failed" and "code 40105" in wrong.message and "check TIKTOK_TOKEN" in wrong.message
    wire = record(sandbox)
    missing = run_sync(duck_warehouse, sync, env={}, progress=False)
    assert missing.status == "failed" and "TIKTOK_TOKEN is not set" in missing.message and wire.seen == []
    assert state(duck_warehouse, "sync_state", "key") == []
    assert held(sandbox.base_url, "tiktok", audience) == set(SEEDS)


def test_unknown_audience_is_a_clear_error(duck_warehouse, sandbox, tmp_path):
    set_audience(duck_warehouse, people(3))
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url, "999"), env=ENV, progress=False)
    assert result.status == "failed" and "audience 999" in result.message and "does not exist" in result.message


@pytest.mark.parametrize("destination, problem", [
    ("{type: tiktok, audience_id: 1, base_url: u, api_key_env: K}",
     r"syncs.yml:4: syncs.0.destination: .*advertiser_id"),
    ("{type: tiktok, advertiser_id: 1, base_url: u, api_key_env: K}", r"needs audience_id"),
    ("{type: tiktok, advertiser_id: x1, audience_id: 1, base_url: u, api_key_env: K}",
     r"syncs.0.destination.advertiser_id: .*numeric id"),
])
def test_bad_config_names_the_field(tmp_path, destination, problem):
    with pytest.raises(SyncConfigError, match=problem):
        load_syncs(write_config(tmp_path / "syncs.yml", "t", destination))
