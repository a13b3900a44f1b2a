"""The SMS opt-out loop closes: Twilio refuses a recipient with 21610, the trigger sync writes an
`opted_out` row to raw.message_events, and after a dbt build of the seeds and models the consent models turn the
person's sms_consent off, so audience_members has no SMS row for them and the next trigger run
sends nothing (one dbt build without tests, ~30 s)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import requests
from trigger_helpers import ENV, query, set_sms_audience, write_config

from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.config import load_syncs
from syncs.trigger import run_trigger

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"
ALICE = "+14155550101"  # tests/fixtures/mini/customers.csv: (415) 555-0101, sms_consent subscribed


def test_21610_opt_out_turns_sms_consent_off_after_a_build_and_is_not_sent_again(duck_warehouse, sandbox, tmp_path):
    load(duck_warehouse, MINI, replace=True)
    # the SMS audience row dbt builds for Alice from the mini data (post_purchase_replenishment, sms)
    set_sms_audience(duck_warehouse, [{"profile_id": "p_alice", "phone": ALICE, "entered_at": datetime(2026, 10, 28, 10),
                                       "payload": json.dumps({"first_name": "Alice", "product_name": "Coffee"})}])
    requests.post(f"{sandbox.base_url}/_sandbox/twilio/inbound", json={"From": ALICE, "Body": "STOP"},
                  timeout=10).raise_for_status()
    path = write_config(tmp_path / "syncs.yml", sandbox.base_url)
    path.write_text(path.read_text().replace("{audience: cart_abandonment, channel: sms}", "{channel: sms}"))
    [sync] = load_syncs(path)
    refused = run_trigger(duck_warehouse, sync, env=ENV, progress=False)
    assert (refused.rejections, refused.opt_outs) == (1, 1), refused.message

    # as_of now: the opt-out happened now (a build as of the fixture's 2026-11-01 would not see it yet)
    run_dbt(duck_warehouse, "build", ["--resource-type", "seed", "--resource-type", "model"], as_of=datetime.now(timezone.utc))
    assert query(duck_warehouse, "select channel, status, source from intermediate.int_consent_signals s join profiles p "
                                 "using (profile_id) where p.phone = :p and s.source = 'message_events'",
                 p=ALICE) == [("sms", "unsubscribed", "message_events")]
    assert query(duck_warehouse, "select sms_consent from profiles where phone = :p", p=ALICE) == [(False,)]
    assert query(duck_warehouse, "select count(*) from audience_members where channel = 'sms'") == [(0,)]
    before = requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()
    after_build = run_trigger(duck_warehouse, sync, env=ENV, progress=False)
    assert (after_build.status, after_build.adds, after_build.rejections) == ("success", 0, 0)
    assert requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json() == before
