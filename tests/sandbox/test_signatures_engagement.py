"""Signed webhooks, Twilio's signed status callbacks, opt-outs, and the engagement simulation."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl

import requests
from receivers import WebhookReceiver

from syncs.sandbox.signing import WEBHOOK_HEADER, sign_webhook, verify_twilio

from .conftest import KLAVIYO_HEADERS, TOKEN

ACCOUNT = "AC" + "0" * 32


def test_signed_webhook_is_stored_and_forged_or_stale_ones_are_rejected(sandbox):
    url = f"{sandbox.base_url}/webhook/crm"
    body = json.dumps({"profile_id": "p1", "audience": "welcome"}).encode()
    ok = requests.post(url, data=body, headers={WEBHOOK_HEADER: sign_webhook(body, TOKEN)})
    assert ok.status_code == 200
    forged = requests.post(url, data=body, headers={WEBHOOK_HEADER: sign_webhook(body, "guessed-secret")})
    tampered = requests.post(url, data=body + b" ", headers={WEBHOOK_HEADER: sign_webhook(body, TOKEN)})
    stale = requests.post(url, data=body, headers={WEBHOOK_HEADER: sign_webhook(body, TOKEN, int(time.time()) - 3600)})
    unsigned = requests.post(url, data=body)
    assert [r.status_code for r in (forged, tampered, stale, unsigned)] == [401, 401, 401, 401]
    assert "stale" in stale.json()["error"] or "replayed" in stale.json()["error"]
    deliveries = requests.get(f"{sandbox.base_url}/_sandbox/webhook/crm").json()["deliveries"]
    assert [d["body"] for d in deliveries] == [{"profile_id": "p1", "audience": "welcome"}]


def test_twilio_status_callbacks_are_signed_and_forged_signatures_fail_verification(sandbox):
    with WebhookReceiver() as receiver:
        callback = f"{receiver.url}/twilio/status?campaign=cart_abandonment&external_id=p42"
        created = requests.post(f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                                auth=(ACCOUNT, TOKEN), data={"To": "+15005550006", "From": "+15005550001",
                                                             "Body": "your cart", "StatusCallback": callback})
        assert created.status_code == 201
        deadline = time.monotonic() + 5
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(receiver.requests) == 2
    statuses = []
    for req in receiver.requests:
        params = dict(parse_qsl(req["body"].decode()))
        signature = req["headers"]["X-Twilio-Signature"]
        assert verify_twilio(signature, callback, params, TOKEN)
        assert not verify_twilio(signature, callback, params, "other-token")
        assert not verify_twilio(signature, callback, {**params, "MessageStatus": "failed"}, TOKEN)
        assert params["MessageSid"] == created.json()["sid"] and params["AccountSid"] == ACCOUNT
        statuses.append(params["MessageStatus"])
    assert statuses == ["sent", "delivered"]
    message = requests.get(f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages/"
                           f"{created.json()['sid']}.json", auth=(ACCOUNT, TOKEN)).json()
    assert message["status"] == "delivered"


def test_optouts_endpoint_blocks_sends_with_21610(sandbox):
    r = requests.post(f"{sandbox.base_url}/_sandbox/twilio/optouts", json={"numbers": ["+15005550007"]})
    assert r.json()["numbers"] == ["+15005550007"]
    assert requests.post(f"{sandbox.base_url}/_sandbox/twilio/optouts", json={"numbers": ["555"]}).status_code == 400
    sent = requests.post(f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                         auth=(ACCOUNT, TOKEN), data={"To": "+15005550007", "From": "+15005550001", "Body": "x"})
    assert sent.status_code == 400 and sent.json()["code"] == 21610


def test_engagement_simulation_is_seeded_and_shaped_like_message_events(start_sandbox, tmp_path):
    def simulate(state) -> list[dict]:
        sandbox = start_sandbox(state_dir=state)
        api = f"{sandbox.base_url}/klaviyo/api"
        list_id = requests.post(f"{api}/lists", json={"data": {"type": "list", "attributes": {"name": "welcome"}}},
                                headers=KLAVIYO_HEADERS).json()["data"]["id"]
        profiles = [{"type": "profile", "attributes": {"email": f"u{i}@e.com", "external_id": f"p{i}"}}
                    for i in range(200)]
        requests.post(f"{api}/profile-bulk-import-jobs", headers=KLAVIYO_HEADERS, json={"data": {
            "type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}},
            "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}}}})
        body = {"seed": 5, "open_rate": 0.5, "click_rate": 0.1, "occurred_at": "2026-01-01T00:00:00Z"}
        added = requests.post(f"{sandbox.base_url}/_sandbox/simulate/engagement", json=body).json()["events_added"]
        again = requests.post(f"{sandbox.base_url}/_sandbox/simulate/engagement", json=body).json()["events_added"]
        assert again == 0
        rows = requests.get(f"{sandbox.base_url}/_sandbox/message_events").json()["message_events"]
        assert len(rows) == added
        return rows

    first, second = simulate(tmp_path / "a"), simulate(tmp_path / "b")
    strip = sorted((r["event"], r["recipient"], r["external_id"]) for r in first)
    assert strip == sorted((r["event"], r["recipient"], r["external_id"]) for r in second)
    assert set(first[0]) == {"message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id"}
    events = [r["event"] for r in first]
    assert events.count("sent") == 200 and events.count("delivered") == 200
    assert 70 <= events.count("opened") <= 130 and 5 <= events.count("clicked") <= 40
    assert {r["campaign"] for r in first} == {"welcome"} and {r["channel"] for r in first} == {"email"}
