"""Upsert mode clears a field whose value became null, against the real sandbox and a real DuckDB
warehouse: Braze gets the attribute as `null` (Braze removes it), Klaviyo gets the property in the
profile's `meta.patch_properties.unset` within the bulk import. Other fields and other rows stay as
they were, and a rerun sends nothing."""
from __future__ import annotations

import json

import pytest
import requests
from ads_helpers import TOKEN, record
from sync_helpers import people, set_audience
from test_braze_sync import config as braze_config
from test_braze_sync import users as braze_users
from test_modes import KLAVIYO, klaviyo_profile, klaviyo_sync

from syncs.config import load_syncs
from syncs.engine import run_sync

ENV = {"BRAZE_KEY": TOKEN, "KL_KEY": TOKEN}
BEFORE = {"step": 1, "offer": "discount_10", "product_name": "Mug"}
AFTER = {"step": 1, "offer": None, "product_name": "Mug"}


def audience(changed: dict | None = None) -> list[dict]:
    """Three people with BEFORE; p_00001 with `changed` instead when given."""
    return [dict(m, payload=json.dumps(changed if changed is not None and m["profile_id"] == "p_00001" else BEFORE))
            for m in people(3)]


def braze_held(base_url: str) -> dict[str, dict]:
    return braze_users(base_url, ["p_00000", "p_00001", "p_00002"])


def klaviyo_held(base_url: str) -> dict[str, dict]:
    return {k: klaviyo_profile(base_url, k) for k in ("p_00000", "p_00001", "p_00002")}


def sync_of(platform: str, tmp_path, base_url: str):
    if platform == "braze":
        [sync] = load_syncs(braze_config(tmp_path / "syncs.yml", base_url))
        return sync
    return klaviyo_sync(tmp_path, base_url, "upsert", list_name=None)


def cleared_on_the_wire(platform: str, wire) -> list:
    """What the update run asked the platform to clear for p_00001."""
    if platform == "braze":
        [track] = [r for r in wire.to("braze") if r.path.endswith("/users/track")]
        [obj] = json.loads(track.body)["attributes"]
        assert obj["external_id"] == "p_00001"
        return [name for name, value in obj.items() if value is None]
    [job] = [r for r in wire.to("klaviyo") if r.method == "POST" and r.path.endswith("/profile-bulk-import-jobs")]
    [profile] = json.loads(job.body)["data"]["attributes"]["profiles"]["data"]
    assert profile["attributes"]["external_id"] == "p_00001"
    assert "lifeline_offer" not in profile["attributes"]["properties"]
    return profile["meta"]["patch_properties"]["unset"]


def fields(platform: str, held: dict) -> dict:
    """The lifeline_* fields a held profile carries (Braze: top-level attributes; Klaviyo: properties)."""
    values = held if platform == "braze" else held.get("properties") or {}
    return {k: v for k, v in values.items() if k.startswith("lifeline_")}


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_field_that_becomes_null_is_cleared_and_nothing_else_changes(duck_warehouse, sandbox, tmp_path, platform):
    sync = sync_of(platform, tmp_path, sandbox.base_url)
    held = braze_held if platform == "braze" else klaviyo_held
    set_audience(duck_warehouse, audience())
    first = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (first.status, first.adds) == ("success", 3), first.message
    full = {"lifeline_step": 1, "lifeline_offer": "discount_10", "lifeline_product_name": "Mug"}
    before = held(sandbox.base_url)
    assert all(fields(platform, p) == full for p in before.values())

    wire = record(sandbox)
    set_audience(duck_warehouse, audience(changed=AFTER))
    second = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (second.status, second.adds, second.updates, second.rejections) == ("success", 0, 1, 0)
    assert cleared_on_the_wire(platform, wire) == ["lifeline_offer"]
    after = held(sandbox.base_url)
    assert fields(platform, after["p_00001"]) == {"lifeline_step": 1, "lifeline_product_name": "Mug"}
    assert after["p_00001"]["email"] == "person1@example.com" and after["p_00001"]["first_name"] == "A"
    assert after["p_00000"] == before["p_00000"] and after["p_00002"] == before["p_00002"]  # not touched
    assert all(fields(platform, after[k]) == full for k in ("p_00000", "p_00002"))

    wire.seen.clear()
    third = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert (third.status, third.adds, third.updates) == ("success", 0, 0) and wire.seen == []

    # the value comes back: set again, the clear was not sticky
    set_audience(duck_warehouse, audience())
    fourth = run_sync(duck_warehouse, sync, env=ENV, progress=False)
    assert fourth.updates == 1 and fields(platform, held(sandbox.base_url)["p_00001"]) == full


def test_klaviyo_sandbox_refuses_a_malformed_unset_as_that_profiles_import_error(sandbox):
    """Only the profile with the malformed patch fails; its stored properties are untouched."""
    url = f"{sandbox.base_url}/klaviyo/api/profile-bulk-import-jobs"

    def job(profiles: list[dict]) -> dict:
        body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}}}}
        answer = requests.post(url, headers=KLAVIYO, data=json.dumps(body), timeout=10)
        assert answer.status_code == 202
        return answer.json()["data"]

    def profile(key: str, properties: dict, unset: object = None) -> dict:
        out: dict = {"type": "profile", "attributes": {"external_id": key, "properties": properties}}
        if unset is not None:
            out["meta"] = {"patch_properties": {"unset": unset}}
        return out

    job([profile("k1", {"a": 1, "b": 2}), profile("k2", {"a": 1, "b": 2})])
    done = job([profile("k1", {}, unset=5), profile("k2", {}, unset="a")])
    assert (done["attributes"]["completed_count"], done["attributes"]["failed_count"]) == (1, 1)
    errors = requests.get(f"{url}/{done['id']}/import-errors", headers=KLAVIYO, timeout=10).json()["data"]
    [error] = errors
    assert error["attributes"]["source"]["pointer"] == "/data/attributes/profiles/data/0/meta/patch_properties/unset"
    assert "unset` must be a property name" in error["attributes"]["detail"]
    assert klaviyo_profile(sandbox.base_url, "k1")["properties"] == {"a": 1, "b": 2}  # nothing lost
    assert klaviyo_profile(sandbox.base_url, "k2")["properties"] == {"b": 2}
