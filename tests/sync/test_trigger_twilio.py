"""Trigger mode against the sandbox's Twilio: one SMS per person per audience entry across repeated
runs, crashes, 429/5xx and answers lost after Twilio created the message; quiet hours by the
recipient's zone; 21610 opt-outs written back to raw.message_events; per-row rejections."""
from __future__ import annotations

import json
import logging
import random
import sys
from datetime import datetime, time, timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from trigger_helpers import (
    ACCOUNT_SID,
    ENV,
    FROM,
    TOKEN,
    key_states,
    messages,
    per_recipient,
    query,
    set_sms_audience,
    sms_people,
    write_config,
)

from orchestration.cli import main as lifeline
from syncs.config import SyncConfigError, load_syncs
from syncs.engine import run_sync
from syncs.quiet_hours import QuietClock, QuietHours, zones_for_phone
from syncs.state import ensure_state
from syncs.trigger import occurrence_key, pending_marker, run_trigger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from fault_helpers import CountingSandbox

DAYTIME = lambda: datetime(2026, 11, 2, 16, 0, tzinfo=timezone.utc)


def sync_of(path: Path):
    [sync] = load_syncs(path)
    return sync


def run(warehouse, sync, **kwargs):
    return run_trigger(warehouse, sync, env=ENV, progress=False, clock=kwargs.pop("clock", DAYTIME), **kwargs)


# -- exactly once --------------------------------------------------------------------------------
def test_one_message_per_occurrence_over_repeated_runs_and_again_on_reentry(any_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    members = sms_people(20) + sms_people(1, start=90, is_holdout=True)
    set_sms_audience(any_warehouse, members)
    first = run(any_warehouse, sync)
    assert (first.status, first.adds, first.rejections) == ("success", 20, 0), first.message
    for _ in range(2):
        again = run(any_warehouse, sync)
        assert (again.status, again.adds, again.already_sent) == ("success", 0, 20)
    held = messages(sandbox.base_url)
    assert sorted(m["to"] for m in held) == sorted(m["phone"] for m in members[:20])  # the holdout got nothing
    assert {m["body"] for m in held if m["to"] == "+12015550003"} == {
        "Hi Ann3, Tea is still in your cart. Reply STOP to opt out."}
    states = key_states(any_warehouse)
    assert {s for s, _ in states.values()} == {"sent"}
    assert {d for _, d in states.values()} == {m["sid"] for m in held}  # each key holds its own message's sid

    # five people leave and enter again: a new occurrence each, so one more message each
    reentered = [dict(m, entered_at=datetime(2026, 11, 3, 9, 0)) if i < 5 else m for i, m in enumerate(members)]
    set_sms_audience(any_warehouse, reentered)
    assert run(any_warehouse, sync).adds == 5
    assert run(any_warehouse, sync).adds == 0
    counts = per_recipient(sandbox.base_url)
    assert [counts[m["phone"]] for m in members[:20]] == [2] * 5 + [1] * 15
    assert query(any_warehouse, "select status, adds from lifeline_state.sync_runs where sync_name = 'sms_cart' "
                                "order by started_at") == [("success", 20), ("success", 0), ("success", 0),
                                                             ("success", 5), ("success", 0)]


def test_dry_run_sends_nothing_and_records_only_the_plan(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    set_sms_audience(duck_warehouse, sms_people(7))
    plan = run_sync(duck_warehouse, sync, dry_run=True, env={}, progress=False)  # no credentials needed
    assert (plan.status, plan.adds) == ("dry_run", 7) and "would send up to 7" in plan.message
    assert messages(sandbox.base_url) == []
    assert key_states(duck_warehouse) == {}
    assert query(duck_warehouse, "select status, adds from lifeline_state.sync_runs") == [("dry_run", 7)]


def test_lifeline_sync_runs_a_trigger_sync_and_prints_what_it_did(duck_warehouse, sandbox, tmp_path, monkeypatch):
    config = write_config(tmp_path / "syncs.yml", sandbox.base_url)
    set_sms_audience(duck_warehouse, sms_people(3))
    for name, value in dict(ENV, LIFELINE_DUCKDB_PATH=str(duck_warehouse.duckdb_path)).items():
        monkeypatch.setenv(name, value)
    dry = CliRunner().invoke(lifeline, ["sync", "sms_cart", "--dry-run", "--config", str(config)])
    assert dry.exit_code == 0 and "sync sms_cart: dry_run (+3" in dry.output, dry.output
    # the CLI has no clock option: quiet hours off in this config, so the wall clock does not matter
    done = CliRunner().invoke(lifeline, ["sync", "sms_cart", "--config", str(config)])
    assert done.exit_code == 0 and "sync sms_cart: success (+3" in done.output and "sent 3" in done.output, done.output
    assert "+1201555" not in done.output  # no phone numbers in the output
    assert len(messages(sandbox.base_url)) == 3


# -- crash between pending and confirm ------------------------------------------------------------
def test_pending_key_whose_message_twilio_has_is_confirmed_not_resent(duck_warehouse, sandbox, tmp_path):
    """The state a SIGKILL between the send and the commit leaves: a pending key, and the message at
    Twilio. (Real SIGKILLs: tests/faults/test_trigger_kills.py.)"""
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    people = sms_people(3)
    set_sms_audience(duck_warehouse, people)
    bodies = [f"Hi Ann{i}, Tea is still in your cart. Reply STOP to opt out." for i in range(2)]
    delivered = requests.post(f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                              data={"To": people[0]["phone"], "From": FROM, "Body": bodies[0]},
                              auth=(ACCOUNT_SID, TOKEN), timeout=10).json()["sid"]
    keys = [occurrence_key("sms_cart", p["profile_id"], "cart_abandonment", p["entered_at"]) for p in people[:2]]
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        for key, person, body in zip(keys, people[:2], bodies, strict=True):  # p0 was delivered before the crash, p1 was not
            conn.execute(sa.text("insert into lifeline_state.trigger_keys values ('sms_cart', :k, 'pending', :m, "
                                 ":t, null)"), {"k": key, "m": pending_marker(person["phone"], body),
                                                "t": datetime.now(timezone.utc).replace(tzinfo=None)})
        conn.commit()
    engine.dispose()
    result = run(duck_warehouse, sync)
    assert (result.status, result.confirmed, result.adds) == ("success", 1, 2), result.message
    assert per_recipient(sandbox.base_url) == {p["phone"]: 1 for p in people}
    assert key_states(duck_warehouse)[keys[0]] == ("sent", delivered)


def test_pending_key_after_the_phone_changed_is_not_resent(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    [person] = sms_people(1)
    key = occurrence_key("sms_cart", person["profile_id"], "cart_abandonment", person["entered_at"])
    engine = duck_warehouse.engine()
    with engine.connect() as conn:
        ensure_state(conn)
        conn.execute(sa.text("insert into lifeline_state.trigger_keys values ('sms_cart', :k, 'pending', :m, :t, null)"),
                     {"k": key, "m": pending_marker("+12015559999", "Hi"), "t": datetime(2026, 11, 2)})
        conn.commit()
    engine.dispose()
    set_sms_audience(duck_warehouse, [person])
    result = run(duck_warehouse, sync)
    assert (result.adds, result.rejections) == (0, 1) and messages(sandbox.base_url) == []
    assert query(duck_warehouse, "select code from lifeline_state.rejections") == [("phone_changed",)]


class LossySandbox(CountingSandbox):
    """The sandbox behind a layer that, for a seeded share of message POSTs, lets Twilio create the
    message and then answers 500 instead: the outcome a client cannot know from the answer."""

    def __init__(self, state_dir: Path, lose_share: float, seed: int, **opts):
        super().__init__(state_dir, **opts)
        self.rng, self.lose_share, self.lost = random.Random(seed), lose_share, 0

    async def _count(self, scope, receive, send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/Messages.json")
                and self.rng.random() < self.lose_share):
            async def swallow(message: dict) -> None:
                return None

            await self.app(scope, receive, swallow)
            self.lost += 1
            body = b'{"code": 20500, "message": "Internal Server Error", "status": 500}'
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await super()._count(scope, receive, send)


def test_429_5xx_drops_and_lost_answers_converge_without_duplicates(duck_warehouse, tmp_path):
    faults = {"twilio": {"error_rate": 0.1, "burst_429": 0.15, "drop_rate": 0.05}}
    with LossySandbox(tmp_path / "sandbox", lose_share=0.15, seed=7, token=TOKEN, rate_limits=False,
                      faults=faults, fault_seed=11) as server:
        sync = sync_of(write_config(tmp_path / "syncs.yml", server.base_url))
        people = sms_people(40)
        set_sms_audience(duck_warehouse, people)
        results = [run(duck_warehouse, sync)]
        while results[-1].status != "success" and len(results) < 6:  # a run may give up; the next converges
            results.append(run(duck_warehouse, sync))
        assert results[-1].status == "success", [r.message for r in results]
        requests.post(f"{server.base_url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
        assert per_recipient(server.base_url) == {p["phone"]: 1 for p in people}
        assert server.lost > 0 and sum(r.retries for r in results) > 0
        assert sum(r.adds + r.confirmed for r in results) == 40
        assert {s for s, _ in key_states(duck_warehouse).values()} == {"sent"}


# -- quiet hours ---------------------------------------------------------------------------------
def test_quiet_hours_defer_by_the_recipients_zone_and_a_later_run_sends(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url, quiet_hours='{start: "21:00", end: "08:00"}'))
    new_york, berlin = sms_people(3), sms_people(2, start=10, country="+491510000")
    set_sms_audience(duck_warehouse, new_york + berlin)
    evening = lambda: datetime(2026, 11, 2, 23, 30, tzinfo=timezone.utc)
    first = run(duck_warehouse, sync, clock=evening)
    assert (first.adds, first.deferred) == (3, 2), first.message
    assert set(per_recipient(sandbox.base_url)) == {p["phone"] for p in new_york}
    assert len(key_states(duck_warehouse)) == 3  # the deferred rows are not marked at all
    assert "deferred 2" in query(duck_warehouse, "select message from lifeline_state.sync_runs")[0][0]
    morning = lambda: datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
    second = run(duck_warehouse, sync, clock=morning)
    assert (second.adds, second.deferred, second.already_sent) == (2, 0, 3)
    assert per_recipient(sandbox.base_url) == {p["phone"]: 1 for p in new_york + berlin}


def test_quiet_hours_rules():
    rules = QuietHours()
    assert [rules.quiet_at(time(h)) for h in (20, 21, 23, 0, 7, 8, 12)] == [False, True, True, True, True, False, False]
    daytime = QuietHours(start="09:00", end="17:00")
    assert [daytime.quiet_at(time(h)) for h in (8, 9, 16, 17)] == [False, True, True, False]
    assert zones_for_phone("+12125550100") == ("America/New_York",)
    assert zones_for_phone("+4915112345678") == ("Europe/Berlin",)
    assert "Europe/London" in zones_for_phone("+447700900123")  # an unassigned range: its country's zones
    assert zones_for_phone("not a phone") == ()
    # Australian mobiles: UTC+7 .. UTC+11, quiet if quiet anywhere there (Perth 20:30 is fine, Sydney is not)
    at = QuietClock(rules, datetime(2026, 11, 2, 12, 30, tzinfo=timezone.utc))
    assert at.quiet("+61412345678") is True
    # an unknown +1 number could be anywhere from Guam to Newfoundland: the sync's default zone decides
    fallback = QuietClock(QuietHours(default_timezone="America/Chicago"), datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc))
    assert [str(z) for z in fallback.zones("+15550001111")] == ["America/Chicago"]
    assert fallback.quiet("+15550001111") is False  # 20:00 in Chicago
    assert QuietClock(None, datetime(2026, 11, 2, 3, 0)).quiet("+12125550100") is False


@pytest.mark.parametrize("setting, error", [
    ('{start: "9pm", end: "08:00"}', r"not a 24-hour time"),
    ('{start: "21:00", end: "21:00"}', r"start and end are equal; write `quiet_hours: null`"),
    ('{start: "21:00", end: "08:00", default_timezone: Mars/Base}', r"not an IANA time zone"),
])
def test_bad_quiet_hours_are_refused_with_the_line(tmp_path, setting, error):
    with pytest.raises(SyncConfigError, match=r"syncs.yml:\d+: .*quiet_hours.*" + error):
        load_syncs(write_config(tmp_path / "syncs.yml", "http://x", quiet_hours=setting))


@pytest.mark.parametrize("destination, error", [
    ('{type: twilio, base_url: u, api_key_env: T, from_number: "+15005550006"}', "needs account_sid_env and api_key_env"),
    ('{type: twilio, base_url: u, api_key_env: T, account_sid_env: S}', "exactly one of from_number"),
    ('{type: twilio, base_url: u, api_key_env: T, account_sid_env: S, from_number: "5550006"}', "from_number"),
])
def test_bad_twilio_destinations_are_refused(tmp_path, destination, error):
    path = tmp_path / "syncs.yml"
    path.write_text(f"syncs:\n  - name: t\n    source: {{audience: a, channel: sms}}\n    mode: trigger\n"
                    f"    message: {{body: hi}}\n    destination: {destination}\n")
    with pytest.raises(SyncConfigError, match=error):
        load_syncs(path)


@pytest.mark.parametrize("extra, error", [
    ("    message: {body: \"hi {first_name.__class__}\"}\n", "not a plain payload field name"),
    ("", "needs message"),
    ("    message: {body: hi}\n    mode: add_remove\n", "set mode: trigger"),
])
def test_bad_trigger_messages_are_refused(tmp_path, extra, error):
    path = tmp_path / "syncs.yml"
    mode = "" if "mode:" in extra else "    mode: trigger\n"
    path.write_text("syncs:\n  - name: t\n    source: {audience: a, channel: sms}\n" + mode +
                    "    destination: {type: twilio, base_url: u, api_key_env: T, account_sid_env: S, "
                    "from_number: \"+15005550006\"}\n" + extra)
    with pytest.raises(SyncConfigError, match=error):
        load_syncs(path)


# -- per-row rejections and opt-outs -------------------------------------------------------------
def test_missing_fields_and_long_bodies_are_rejected_per_row_and_not_retried(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url, body="{first_name|Hello}: {product_name}"))
    people = sms_people(4)
    people[1]["payload"] = json.dumps({"first_name": "NoProduct"})
    people[2]["payload"] = json.dumps({"first_name": "Long", "product_name": "x" * 1_700})
    people[3]["payload"] = json.dumps({"first_name": None, "product_name": "Tea"})  # the fallback fills it
    set_sms_audience(duck_warehouse, people)
    first = run(duck_warehouse, sync)
    assert (first.status, first.adds, first.rejections) == ("success", 2, 2)
    assert sorted(m["body"] for m in messages(sandbox.base_url)) == ["Ann0: Tea", "Hello: Tea"]
    assert sorted(query(duck_warehouse, "select code from lifeline_state.rejections")) == [
        ("body_too_long",), ("template_field_missing",)]
    again = run(duck_warehouse, sync)
    assert (again.adds, again.rejections) == (0, 0)  # neither is retried while the row is unchanged
    people[1]["payload"] = json.dumps({"first_name": "NoProduct", "product_name": "Tea"})  # fixed upstream
    set_sms_audience(duck_warehouse, people)
    assert run(duck_warehouse, sync).adds == 1
    shorter = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url, body="{first_name}: hi"))
    assert run(duck_warehouse, shorter).adds == 1  # a fixed template retries the row rejected as too long
    assert len(messages(sandbox.base_url)) == 4


def test_opted_out_recipient_is_a_rejection_and_an_opt_out_row(any_warehouse, sandbox, tmp_path, caplog):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    people = sms_people(5)
    requests.post(f"{sandbox.base_url}/_sandbox/twilio/inbound", json={"From": people[2]["phone"], "Body": "STOP"},
                  timeout=10).raise_for_status()
    set_sms_audience(any_warehouse, people)
    caplog.set_level(logging.INFO)  # every logger; urllib3's DEBUG lines print request URLs (To=...)
    result = run(any_warehouse, sync)
    assert (result.status, result.adds, result.rejections, result.opt_outs) == ("success", 4, 1, 1), result.message
    assert people[2]["phone"] not in per_recipient(sandbox.base_url)
    key = occurrence_key("sms_cart", "p_00002", "cart_abandonment", people[2]["entered_at"])
    assert key_states(any_warehouse)[key] == ("failed", None)
    assert query(any_warehouse, "select key, code from lifeline_state.rejections") == [(key, "21610")]
    assert query(any_warehouse, "select message_id, channel, event, recipient, campaign, external_id "
                                "from raw.message_events") == [
        (f"twilio-optout:{key}", "sms", "opted_out", people[2]["phone"], "cart_abandonment", "p_00002")]
    assert "12015550002" not in caplog.text  # no phone number in the logs
    again = run(any_warehouse, sync)
    assert (again.adds, again.rejections, again.opt_outs) == (0, 0, 0)
    assert query(any_warehouse, "select count(*) from raw.message_events") == [(1,)]


def test_an_opt_out_lost_to_a_crash_is_written_by_the_next_run(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    people = sms_people(2)
    requests.post(f"{sandbox.base_url}/_sandbox/twilio/optouts", json={"numbers": [people[0]["phone"]]},
                  timeout=10).raise_for_status()
    set_sms_audience(duck_warehouse, people)
    assert run(duck_warehouse, sync).opt_outs == 1
    engine = duck_warehouse.engine()
    with engine.begin() as conn:  # as if the process died after committing the rejection, before the write
        conn.execute(sa.text("delete from raw.message_events"))
    engine.dispose()
    repaired = run(duck_warehouse, sync)
    assert (repaired.adds, repaired.opt_outs) == (0, 1)
    assert query(duck_warehouse, "select event, recipient from raw.message_events") == [("opted_out", people[0]["phone"])]


def test_an_opt_out_the_warehouse_refuses_is_reported_and_written_by_the_next_run(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    [person] = sms_people(1)
    requests.post(f"{sandbox.base_url}/_sandbox/twilio/optouts", json={"numbers": [person["phone"]]},
                  timeout=10).raise_for_status()
    set_sms_audience(duck_warehouse, [person])
    holder = duck_warehouse.engine()  # a connection of another configuration keeps the writer out of the file
    with holder.connect():
        refused = run(duck_warehouse, sync)
    holder.dispose()
    assert refused.status == "success" and refused.opt_outs == 0
    assert "could not record 1 SMS opt-out(s) in raw.message_events" in refused.message
    assert "the next run writes them" in refused.message
    later = run(duck_warehouse, sync)
    assert (later.adds, later.opt_outs) == (0, 1)
    assert query(duck_warehouse, "select event, recipient from raw.message_events") == [("opted_out", person["phone"])]


def test_refused_credentials_stop_the_run_and_the_next_run_sends_once(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    people = sms_people(3)
    set_sms_audience(duck_warehouse, people)
    missing = run_trigger(duck_warehouse, sync, env={}, progress=False, clock=DAYTIME)
    assert missing.status == "failed" and "TEST_TWILIO_SID is not set" in missing.message
    assert key_states(duck_warehouse) == {}  # nothing was marked pending
    refused = run_trigger(duck_warehouse, sync, env=dict(ENV, TEST_TWILIO_TOKEN="wrong"), progress=False, clock=DAYTIME)
    assert refused.status == "failed" and "refused the credentials" in refused.message
    assert "wrong" not in refused.message and "+1201" not in refused.message
    assert messages(sandbox.base_url) == []
    good = run(duck_warehouse, sync)
    assert (good.status, good.adds) == ("success", 3)
    assert per_recipient(sandbox.base_url) == {p["phone"]: 1 for p in people}


def test_trigger_needs_a_message_destination_and_sms(duck_warehouse, sandbox, tmp_path):
    path = write_config(tmp_path / "syncs.yml", sandbox.base_url)
    path.write_text(path.read_text().replace("channel: sms", "channel: email"))
    result = run(duck_warehouse, sync_of(path))
    assert result.status == "failed" and "set source.channel: sms" in result.message


def test_an_invalid_number_is_a_permanent_failure_for_that_row_only(duck_warehouse, sandbox, tmp_path):
    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    people = sms_people(2) + [dict(sms_people(1, start=2)[0], phone="+12")]
    set_sms_audience(duck_warehouse, people)
    result = run(duck_warehouse, sync)
    assert (result.status, result.adds, result.rejections) == ("success", 2, 1)
    [(code, message)] = query(duck_warehouse, "select code, message from lifeline_state.rejections")
    assert code == "21211" and "+12" not in message
    assert sorted(s for s, _ in key_states(duck_warehouse).values()) == ["failed", "sent", "sent"]
    assert run(duck_warehouse, sync).rejections == 0  # a failed key is final: not sent again


# -- erasure -------------------------------------------------------------------------------------
def test_forget_deletes_every_message_record_to_the_person_and_only_theirs(duck_warehouse, sandbox, tmp_path):
    from syncs.erasure import forget_one

    sync = sync_of(write_config(tmp_path / "syncs.yml", sandbox.base_url))
    members = sms_people(3)
    set_sms_audience(duck_warehouse, members)
    assert run(duck_warehouse, sync).adds == 3
    set_sms_audience(duck_warehouse, [dict(members[0], entered_at=datetime(2026, 11, 5, 9, 0))] + members[1:])
    assert run(duck_warehouse, sync).adds == 1  # the first person now has two messages
    gone = members[0]["phone"]
    assert per_recipient(sandbox.base_url)[gone] == 2
    row = {"key": members[0]["profile_id"], "email": None, "phone": gone, "destination_id": None}
    outcome = forget_one(sync, [row], ENV)
    assert (outcome.status, outcome.detail) == ("deleted", "1 deletion(s) accepted"), outcome
    counts = per_recipient(sandbox.base_url)
    assert counts[gone] == 0 and [counts[m["phone"]] for m in members[1:]] == [1, 1]
    assert forget_one(sync, [row], ENV).status == "deleted"  # again: nothing left, still fine
    denied = forget_one(sync, [row], dict(ENV, TEST_TWILIO_TOKEN="wrong"))
    assert denied.status == "failed" and "wrong" not in denied.detail
    assert [counts[m["phone"]] for m in members[1:]] == [1, 1]
