"""Upsert mode: a row that leaves the model and returns carrying fewer fields has the fields it no
longer carries cleared at the destination, as a row that never left does (syncs.sent_fields), against
the real sandbox (Braze, Klaviyo) and real DuckDB and PostgreSQL warehouses. The departed row's state
is kept (status 'departed', syncs.state.mark_departed), so the engine still knows what it sent."""
from __future__ import annotations

import json

import pytest
from ads_helpers import record
from sync_helpers import people, set_audience
from test_modes import klaviyo_list, klaviyo_sync
from test_vanished_fields import ENV, KEYS, cleared_on_the_wire, execute, held, killed_before_commit, run, sync_of

from syncs.engine import run_sync

OFFER = {"step": 1, "offer": "discount_10"}
FULL = {"lifeline_step": 1, "lifeline_offer": "discount_10"}
LEAVER = "p_00001"


def audience(warehouse, leaver_payload: dict | None) -> None:
    """p_00000 and p_00002 with OFFER; p_00001 with `leaver_payload`, or absent when None."""
    set_audience(warehouse, [dict(m, payload=json.dumps(OFFER if m["profile_id"] != LEAVER else leaver_payload))
                             for m in people(3) if m["profile_id"] != LEAVER or leaver_payload is not None])


def status(warehouse, name: str) -> dict[str, tuple]:
    rows = execute(warehouse, f"select key, status, sent_fields from lifeline_state.sync_state "
                              f"where sync_name = '{name}' order by key")
    return {key: (state, sent) for key, state, sent in rows}


def last_run(warehouse, name: str) -> tuple:
    [row] = execute(warehouse, f"select status, adds, updates, removes from lifeline_state.sync_runs "
                               f"where sync_name = '{name}' order by finished_at desc limit 1")
    return tuple(row)


def left_and_back(warehouse, sandbox, tmp_path, platform: str):
    """First run with everyone carrying an offer, then the leaver leaves (its state is kept as
    'departed'); the model then holds the leaver again with `step` only. Returns the sync."""
    sync = sync_of(tmp_path, platform, sandbox.base_url)
    audience(warehouse, OFFER)
    assert run(warehouse, sync).adds == 3 and held(platform, sandbox.base_url) == {k: FULL for k in KEYS}
    audience(warehouse, None)
    left = run(warehouse, sync)
    assert (left.adds, left.updates, left.removes) == (0, 0, 0) and "1 rows left the model" in left.message
    assert status(warehouse, sync.name)[LEAVER] == ("departed", '["offer","step"]')
    assert held(platform, sandbox.base_url)[LEAVER] == FULL  # upsert removes nothing
    audience(warehouse, {"step": 1})
    return sync


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_row_returning_with_fewer_fields_has_them_cleared_and_a_rerun_sends_nothing(any_warehouse, sandbox,
                                                                                     tmp_path, platform):
    sync = left_and_back(any_warehouse, sandbox, tmp_path, platform)
    planned = run_sync(any_warehouse, sync, env=ENV, progress=False, dry_run=True)
    assert (planned.status, planned.adds, planned.updates, planned.removes) == ("dry_run", 1, 0, 0)
    assert last_run(any_warehouse, sync.name) == ("dry_run", 1, 0, 0)

    wire = record(sandbox)
    back = run(any_warehouse, sync)
    assert (back.adds, back.updates, back.removes, back.rejections) == (1, 0, 0, 0)  # a return counts as an add
    assert last_run(any_warehouse, sync.name) == ("success", 1, 0, 0)
    assert cleared_on_the_wire(platform, wire) == {LEAVER: ["lifeline_offer"]}  # only the returning row is sent
    assert held(platform, sandbox.base_url) == {"p_00000": FULL, LEAVER: {"lifeline_step": 1}, "p_00002": FULL}
    assert status(any_warehouse, sync.name)[LEAVER] == ("synced", '["step"]')

    wire.seen.clear()
    again = run(any_warehouse, sync)
    assert (again.adds, again.updates) == (0, 0) and wire.seen == []


@pytest.mark.parametrize("platform", ["braze", "klaviyo"])
def test_a_return_killed_between_send_and_state_commit_converges_on_rerun(any_warehouse, sandbox, tmp_path,
                                                                          monkeypatch, platform):
    sync = left_and_back(any_warehouse, sandbox, tmp_path, platform)
    before = status(any_warehouse, sync.name)

    killed_before_commit(any_warehouse, sync, monkeypatch)
    assert status(any_warehouse, sync.name) == before  # sent, but not recorded: still 'departed'
    assert held(platform, sandbox.base_url)[LEAVER] == {"lifeline_step": 1}

    wire = record(sandbox)
    rerun = run(any_warehouse, sync)  # the same add with the same clear: idempotent at the destination
    assert (rerun.adds, rerun.updates) == (1, 0)
    assert cleared_on_the_wire(platform, wire) == {LEAVER: ["lifeline_offer"]}
    assert held(platform, sandbox.base_url) == {"p_00000": FULL, LEAVER: {"lifeline_step": 1}, "p_00002": FULL}
    wire.seen.clear()
    assert run(any_warehouse, sync).adds == 0 and wire.seen == []


def test_a_departed_row_returning_unchanged_is_resent_once_and_clears_nothing(duck_warehouse, sandbox, tmp_path):
    sync = left_and_back(duck_warehouse, sandbox, tmp_path, "braze")
    audience(duck_warehouse, OFFER)  # back with everything it had
    wire = record(sandbox)
    assert run(duck_warehouse, sync).adds == 1
    assert cleared_on_the_wire("braze", wire) == {LEAVER: []}
    assert held("braze", sandbox.base_url) == {k: FULL for k in KEYS}
    wire.seen.clear()
    assert run(duck_warehouse, sync).adds == 0 and wire.seen == []


def test_a_departed_row_still_absent_is_neither_resent_nor_counted_again(duck_warehouse, sandbox, tmp_path):
    """Later runs while the row stays away: nothing to send, no second 'left the model', and the
    departed row is no member for the safety limits (plan.current)."""
    sync = sync_of(tmp_path, "braze", sandbox.base_url)
    audience(duck_warehouse, OFFER)
    run(duck_warehouse, sync)
    audience(duck_warehouse, None)
    run(duck_warehouse, sync)
    wire = record(sandbox)
    later = run(duck_warehouse, sync)
    assert later.message == "up to date: nothing to send" and wire.seen == []
    assert later.plan.current == 2 and later.plan.released == 0


def test_state_from_an_earlier_release_that_dropped_the_row_still_works(any_warehouse, sandbox, tmp_path):
    """Before 'departed', a leaving row's state was deleted: the return is a plain add. What it held
    before is unknown, so nothing is cleared (the stale field stays); the row is synced from then on."""
    sync = left_and_back(any_warehouse, sandbox, tmp_path, "braze")
    execute(any_warehouse, f"delete from lifeline_state.sync_state where sync_name = '{sync.name}' "
                           f"and key = '{LEAVER}'")  # what the earlier release left behind
    wire = record(sandbox)
    back = run(any_warehouse, sync)
    assert (back.adds, back.updates, back.rejections) == (1, 0, 0)
    assert cleared_on_the_wire("braze", wire) == {LEAVER: []}
    assert held("braze", sandbox.base_url)[LEAVER] == FULL
    assert status(any_warehouse, sync.name)[LEAVER] == ("synced", '["step"]')
    audience(any_warehouse, {"step": 2})  # known from now on: the next change clears nothing stale
    wire.seen.clear()
    run(any_warehouse, sync)
    assert held("braze", sandbox.base_url)[LEAVER] == {"lifeline_step": 2, "lifeline_offer": "discount_10"}


def test_mirror_treats_a_departed_row_as_no_member(duck_warehouse, sandbox, tmp_path):
    """A sync switched from upsert to mirror under the same name: the departed row's person is still
    in the list but not in the model, so mirror removes them (as when upsert deleted the state), and
    a return adds them again."""
    sync = klaviyo_sync(tmp_path, sandbox.base_url, "mirror")
    sync.safety.max_remove_share = 1
    set_audience(duck_warehouse, people(3))
    assert run(duck_warehouse, sync).adds == 3
    execute(duck_warehouse, f"update lifeline_state.sync_state set status = 'departed' "
                            f"where sync_name = '{sync.name}' and key = '{LEAVER}'")  # as an upsert run leaves it
    set_audience(duck_warehouse, [m for m in people(3) if m["profile_id"] != LEAVER])
    planned = run_sync(duck_warehouse, sync, env=ENV, progress=False, dry_run=True)
    assert (planned.plan.current, planned.removes, planned.plan.strangers) == (2, 1, 1)
    gone = run(duck_warehouse, sync)
    assert (gone.removes, gone.strangers) == (1, 1)
    assert set(klaviyo_list(sandbox.base_url, "cart")) == {"person0@example.com", "person2@example.com"}
    set_audience(duck_warehouse, people(3))
    assert run(duck_warehouse, sync).adds == 1
    assert len(klaviyo_list(sandbox.base_url, "cart")) == 3
    assert status(duck_warehouse, sync.name)[LEAVER][0] == "synced"
