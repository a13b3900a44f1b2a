"""Upsert mode clears a field that vanished from the payload altogether (syncs.sent_fields), against
the real sandbox (Braze, Klaviyo) and real DuckDB and PostgreSQL warehouses: a field removed from
the `fields:` mapping of syncs.yml, a key the model stopped writing, a run killed between send and
state commit, state written before sent_fields existed, and a mapping naming a missing column."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from ads_helpers import TOKEN, record
from sync_helpers import people, set_audience
from test_braze_sync import users as braze_users
from test_modes import klaviyo_profile

import syncs.engine
from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync
from syncs.plan import source_sql
from syncs.sent_fields import backfill

ENV = {"BRAZE_KEY": TOKEN, "KL_KEY": TOKEN}
KEYS = ["p_00000", "p_00001", "p_00002"]
PAYLOAD = {"step": 1, "offer": "discount_10"}


def write_config(path: Path, platform: str, base_url: str, fields: list[str] | None) -> Path:
    destination = {"type": platform, "base_url": f"{base_url}/{platform}", "client_rate_limits": False,
                   "api_key_env": "BRAZE_KEY" if platform == "braze" else "KL_KEY"}
    mapping = f"\n    fields: {json.dumps(fields)}" if fields is not None else ""
    path.write_text(f"""syncs:
  - name: vanish_{platform}
    source: {{audience: cart_abandonment, channel: email}}
    mode: upsert{mapping}
    destination: {json.dumps(destination)}
    safety: {{max_remove_share: 1, max_add_multiple: 1000}}
""")
    return path


def sync_of(tmp_path: Path, platform: str, base_url: str, fields: list[str] | None = None):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", platform, base_url, fields))
    return sync


def audience(warehouse, payload: dict, tier: bool = True) -> None:
    """Three people with `payload`; the model has a `tier` column ('gold') unless `tier` is False."""
    set_audience(warehouse, [dict(m, payload=json.dumps(payload)) for m in people(3)])
    if tier:
        execute(warehouse, "alter table audience_members add column tier varchar",
                "update audience_members set tier = 'gold'")


def execute(warehouse, *statements: str) -> list[tuple]:
    engine = warehouse.engine()
    with engine.begin() as conn:
        rows = [conn.execute(sa.text(s)) for s in statements][-1]
        out = rows.fetchall() if rows.returns_rows else []
    engine.dispose()
    return out


def state(warehouse, name: str) -> list[tuple]:
    return execute(warehouse, f"select key, row_hash, sent_fields from lifeline_state.sync_state "
                              f"where sync_name = '{name}' order by key")


def held(platform: str, base_url: str) -> dict[str, dict]:
    """The lifeline_* fields each person holds at the sandbox."""
    if platform == "braze":
        found = braze_users(base_url, KEYS)
    else:
        found = {k: (klaviyo_profile(base_url, k) or {}).get("properties") or {} for k in KEYS}
    return {k: {f: v for f, v in found[k].items() if f.startswith("lifeline_")} for k in KEYS}


def cleared_on_the_wire(platform: str, wire) -> dict[str, list[str]]:
    """Per person, what the run asked the platform to clear (Braze: null attributes; Klaviyo: unset)."""
    cleared: dict[str, list[str]] = {}
    if platform == "braze":
        for request in wire.to("braze"):
            for obj in json.loads(request.body)["attributes"]:
                cleared[obj["external_id"]] = sorted(k for k, v in obj.items() if v is None)
        return cleared
    for request in wire.to("klaviyo"):
        if request.method == "POST" and request.path.endswith("/profile-bulk-import-jobs"):
            for profile in json.loads(request.body)["data"]["attributes"]["profiles"]["data"]:
                unset = ((profile.get("meta") or {}).get("patch_properties") or {}).get("unset") or []
                assert not set(unset) & set(profile["attributes"].get("properties") or {})
                cleared[profile["attributes"]["external_id"]] = sorted(unset)
    return cleared


def run(warehouse, sync):
    result = run_sync(warehouse, sync, env=ENV, progress=False)
    assert result.status == "success", result.message
    return result


FULL = {"lifeline_step": 1, "lifeline_offer": "discount_10", "lifeline_tier": "gold"}
WITHOUT_TIER = {"lifeline_step": 1, "lifeline_offer": "discount_10"}


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_field_removed_from_the_mapping_is_cleared_though_no_model_row_changed(any_warehouse, sandbox, tmp_path,
                                                                                 platform):
    audience(any_warehouse, PAYLOAD)
    first = run(any_warehouse, sync_of(tmp_path, platform, sandbox.base_url, ["tier"]))
    assert first.adds == 3 and held(platform, sandbox.base_url) == {k: FULL for k in KEYS}
    assert {row[2] for row in state(any_warehouse, f"vanish_{platform}")} == {'["offer","step","tier"]'}

    wire = record(sandbox)
    sync = sync_of(tmp_path, platform, sandbox.base_url, None)  # tier removed from syncs.yml
    second = run(any_warehouse, sync)
    assert (second.adds, second.updates, second.rejections) == (0, 3, 0)
    assert cleared_on_the_wire(platform, wire) == {k: ["lifeline_tier"] for k in KEYS}
    assert held(platform, sandbox.base_url) == {k: WITHOUT_TIER for k in KEYS}
    assert {row[2] for row in state(any_warehouse, sync.name)} == {'["offer","step"]'}

    wire.seen.clear()
    third = run(any_warehouse, sync)  # unchanged: nothing is sent, nothing is cleared again
    assert (third.adds, third.updates) == (0, 0) and wire.seen == []


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_field_the_model_stopped_writing_is_cleared_and_a_rerun_sends_nothing(any_warehouse, sandbox, tmp_path,
                                                                                 platform):
    """The model's `offer` column is dropped: the payload no longer has the key at all (not null)."""
    sync = sync_of(tmp_path, platform, sandbox.base_url)
    audience(any_warehouse, PAYLOAD, tier=False)
    run(any_warehouse, sync)
    assert held(platform, sandbox.base_url) == {k: WITHOUT_TIER for k in KEYS}

    wire = record(sandbox)
    audience(any_warehouse, {"step": 1}, tier=False)
    second = run(any_warehouse, sync)
    assert second.updates == 3 and cleared_on_the_wire(platform, wire) == {k: ["lifeline_offer"] for k in KEYS}
    assert held(platform, sandbox.base_url) == {k: {"lifeline_step": 1} for k in KEYS}

    wire.seen.clear()
    assert run(any_warehouse, sync).updates == 0 and wire.seen == []
    audience(any_warehouse, {"step": 2}, tier=False)  # the next change clears nothing again
    run(any_warehouse, sync)
    assert cleared_on_the_wire(platform, wire) == {k: [] for k in KEYS}


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs, the open transaction is never committed."""


def killed_before_commit(warehouse, sync, monkeypatch) -> None:
    """Run the sync and die right after the destination answered, before its state is written."""
    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(syncs.engine, "mark_synced", die)
        with pytest.raises(Killed):
            run_sync(warehouse, sync, env=ENV, progress=False)


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_run_killed_between_send_and_state_commit_converges_on_rerun(any_warehouse, sandbox, tmp_path,
                                                                      monkeypatch, platform):
    audience(any_warehouse, PAYLOAD)
    run(any_warehouse, sync_of(tmp_path, platform, sandbox.base_url, ["tier"]))
    before = state(any_warehouse, f"vanish_{platform}")
    sync = sync_of(tmp_path, platform, sandbox.base_url, None)
    audience(any_warehouse, {"step": 1}, tier=False)  # offer and tier both vanish

    killed_before_commit(any_warehouse, sync, monkeypatch)
    assert state(any_warehouse, sync.name) == before  # sent, but not recorded
    assert held(platform, sandbox.base_url) == {k: {"lifeline_step": 1} for k in KEYS}

    wire = record(sandbox)
    rerun = run(any_warehouse, sync)  # sends the same clears again: idempotent at the destination
    assert rerun.updates == 3
    assert cleared_on_the_wire(platform, wire) == {k: ["lifeline_offer", "lifeline_tier"] for k in KEYS}
    assert held(platform, sandbox.base_url) == {k: {"lifeline_step": 1} for k in KEYS}
    assert {row[2] for row in state(any_warehouse, sync.name)} == {'["step"]'}
    wire.seen.clear()
    assert run(any_warehouse, sync).updates == 0 and wire.seen == []


def test_state_from_before_sent_fields_is_migrated_without_resending_and_then_clears(any_warehouse, sandbox,
                                                                                    tmp_path):
    """An install upgraded from a version without sent_fields: its sync_state is kept, unchanged rows
    are not re-sent, and a field that vanishes afterwards is cleared."""
    sync = sync_of(tmp_path, "braze", sandbox.base_url)
    audience(any_warehouse, PAYLOAD, tier=False)
    run(any_warehouse, sync)
    execute(any_warehouse, "alter table lifeline_state.sync_state drop column sent_fields")  # the old schema
    old = execute(any_warehouse, f"select key, row_hash, destination_id, status from lifeline_state.sync_state "
                                 f"where sync_name = '{sync.name}' order by key")

    wire = record(sandbox)
    upgraded = run(any_warehouse, sync)
    assert (upgraded.adds, upgraded.updates) == (0, 0) and wire.seen == []  # nothing re-sent
    assert execute(any_warehouse, f"select key, row_hash, destination_id, status from lifeline_state.sync_state "
                                  f"where sync_name = '{sync.name}' order by key") == old
    assert {row[2] for row in state(any_warehouse, sync.name)} == {'["offer","step"]'}
    assert backfill_once(any_warehouse, sync) == 0  # done once: the next run finds nothing to fill

    audience(any_warehouse, {"step": 1}, tier=False)
    run(any_warehouse, sync)
    assert cleared_on_the_wire("braze", wire) == {k: ["lifeline_offer"] for k in KEYS}
    assert held("braze", sandbox.base_url) == {k: {"lifeline_step": 1} for k in KEYS}


def backfill_once(warehouse, sync) -> int:
    engine = warehouse.engine()
    with engine.connect() as conn:
        filled = backfill(conn, sync, *source_sql(sync))
    engine.dispose()
    return filled


def test_the_backfill_leaves_a_row_that_changed_before_the_upgrade_unknown(any_warehouse, sandbox, tmp_path):
    """What a changed row carried before the upgrade is not known: it is not claimed from the model."""
    sync = sync_of(tmp_path, "braze", sandbox.base_url)
    audience(any_warehouse, PAYLOAD, tier=False)
    run(any_warehouse, sync)
    execute(any_warehouse, "update lifeline_state.sync_state set sent_fields = null")  # as if written before
    execute(any_warehouse, "update audience_members set payload = '{\"step\": 2}' where profile_id = 'p_00002'")
    assert backfill_once(any_warehouse, sync) == 2
    assert [row[2] for row in state(any_warehouse, sync.name)] == ['["offer","step"]', '["offer","step"]', None]


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_mapping_naming_a_missing_column_fails_clearly_and_loses_nothing(any_warehouse, sandbox, tmp_path,
                                                                         platform):
    audience(any_warehouse, PAYLOAD)
    run(any_warehouse, sync_of(tmp_path, platform, sandbox.base_url, ["tier"]))
    before_state, before_held = state(any_warehouse, f"vanish_{platform}"), held(platform, sandbox.base_url)

    audience(any_warehouse, PAYLOAD, tier=False)  # the model dropped tier, syncs.yml still names it
    wire = record(sandbox)
    result = run_sync(any_warehouse, sync_of(tmp_path, platform, sandbox.base_url, ["tier"]), env=ENV, progress=False)
    assert result.status == "failed"
    assert "syncs.yml" in result.message and "tier" in result.message and "Nothing was sent" in result.message
    assert wire.seen == []
    assert state(any_warehouse, f"vanish_{platform}") == before_state
    assert held(platform, sandbox.base_url) == before_held == {k: FULL for k in KEYS}


def test_a_field_name_that_is_no_identifier_is_refused_with_file_line_and_field(tmp_path):
    path = write_config(tmp_path / "syncs.yml", "braze", "http://127.0.0.1:1", ["Loyalty Tier"])
    with pytest.raises(SyncConfigError) as error:
        load_syncs(path)
    message = str(error.value)
    assert f"{path}:5:" in message and "fields" in message and "'Loyalty Tier'" in message


def test_fields_on_a_trigger_sync_are_refused_naming_the_sync(tmp_path):
    from trigger_helpers import write_config as trigger_config

    path = trigger_config(tmp_path / "syncs.yml", "http://127.0.0.1:1", extra="    fields: [tier]\n")
    with pytest.raises(SyncConfigError) as error:
        load_syncs(path)
    assert str(path) in str(error.value) and "sms_cart: fields is for syncs that send profile attributes" in str(
        error.value)
