"""The receiver: signed Twilio status callbacks and webhooks land once in raw.message_events;
forged, missing or stale signatures and unmappable bodies are refused and write nothing."""
from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import parse_qsl

import requests

from syncs.feedback.signatures import TWILIO_HEADER, WEBHOOK_HEADER, twilio_signature
from syncs.feedback.writer import MessageEventWriter
from syncs.sandbox.signing import sign_webhook

from .conftest import TWILIO_TOKEN, WEBHOOK_SECRET, message_events

ACCOUNT = "AC" + "0" * 32
PARAMS = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": ACCOUNT, "To": "+15005550006",
          "From": "+15005550001"}


def post_twilio(url: str, params: dict, token: str = TWILIO_TOKEN, signed_url: str | None = None) -> requests.Response:
    signature = twilio_signature(signed_url or url, sorted(params.items()), token)
    return requests.post(url, data=params, headers={TWILIO_HEADER: signature})


def test_sandbox_twilio_callbacks_land_once_even_when_posted_twice(receiver, sandbox, duck_warehouse):
    callback = f"{receiver.url}/twilio/status?campaign=cart_abandonment&external_id=p42"
    created = requests.post(f"{sandbox.base_url}/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                            auth=(ACCOUNT, TWILIO_TOKEN), data={"To": "+15005550006", "From": "+15005550001",
                                                                "Body": "your cart", "StatusCallback": callback})
    assert created.status_code == 201
    sid = created.json()["sid"]
    deadline = time.monotonic() + 10
    while len(message_events(duck_warehouse)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = message_events(duck_warehouse)
    assert [(r[0], r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        (sid, "sms", "delivered", "+15005550006", "cart_abandonment", "p42"),
        (sid, "sms", "sent", "+15005550006", "cart_abandonment", "p42")]
    # Twilio retries a callback it thinks failed: the same delivery posted again is written 0 times.
    again = post_twilio(callback, {**PARAMS, "MessageSid": sid})
    assert again.status_code == 200 and again.json() == {"received": 1, "written": 0}
    assert message_events(duck_warehouse) == rows


def test_forged_missing_and_tampered_signatures_get_403_and_write_nothing(receiver, duck_warehouse):
    url = f"{receiver.url}/twilio/status?campaign=welcome"
    body = json.dumps({"message_id": "m1", "channel": "email", "event": "opened",
                       "occurred_at": "2026-10-01T00:00:00Z"}).encode()
    responses = [
        post_twilio(url, PARAMS, token="guessed-token"),
        requests.post(url, data=PARAMS),
        requests.post(url, data={**PARAMS, "MessageStatus": "failed"},
                      headers={TWILIO_HEADER: twilio_signature(url, sorted(PARAMS.items()), TWILIO_TOKEN)}),
        post_twilio(url, PARAMS, signed_url=f"{receiver.url}/twilio/status?campaign=win_back"),
        requests.post(f"{receiver.url}/webhook", data=body, headers={WEBHOOK_HEADER: sign_webhook(body, "guess")}),
        requests.post(f"{receiver.url}/webhook", data=body),
        requests.post(f"{receiver.url}/webhook", data=body,
                      headers={WEBHOOK_HEADER: sign_webhook(body, WEBHOOK_SECRET, int(time.time()) - 3600)}),
    ]
    assert [r.status_code for r in responses] == [403] * 7
    assert all(r.json()["error"].startswith("forbidden") for r in responses)
    assert message_events(duck_warehouse) == []


def test_json_callback_is_verified_by_body_sha256(receiver, duck_warehouse):
    body = json.dumps({**PARAMS, "MessageSid": "SMjson", "MessageStatus": "read"})
    url = f"{receiver.url}/twilio/status?external_id=p7&bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = twilio_signature(url, [], TWILIO_TOKEN)
    headers = {TWILIO_HEADER: signature, "Content-Type": "application/json"}
    tampered = requests.post(url, data=body.replace("read", "sent"), headers=headers)
    assert tampered.status_code == 403 and message_events(duck_warehouse) == []
    ok = requests.post(url, data=body, headers=headers)
    assert ok.status_code == 200 and ok.json()["written"] == 1
    assert [(r[0], r[2], r[6]) for r in message_events(duck_warehouse)] == [("SMjson", "opened", "p7")]


def test_signed_webhook_rows_written_once_and_bad_rows_refused_whole(receiver, duck_warehouse):
    good = [{"message_id": "m1", "channel": "email", "event": "opened", "occurred_at": "2026-10-01T00:00:00Z",
             "recipient": "a@example.com", "campaign": "welcome", "external_id": "p1"},
            {"message_id": "m1", "channel": "email", "event": "clicked", "occurred_at": "2026-10-01T00:05:00Z"}]
    bad = {"message_events": [good[0], {**good[1], "message_id": "m2", "event": "exploded"}]}

    def post(payload) -> requests.Response:
        body = json.dumps(payload).encode()
        return requests.post(f"{receiver.url}/webhook", data=body,
                             headers={WEBHOOK_HEADER: sign_webhook(body, WEBHOOK_SECRET)})

    refused = post(bad)
    assert refused.status_code == 400 and "item 1" in refused.json()["error"] and "exploded" in refused.json()["error"]
    assert message_events(duck_warehouse) == []
    assert post(good).json() == {"received": 2, "written": 2}
    assert post({"message_events": good}).json() == {"received": 2, "written": 0}
    assert [(r[0], r[2], r[4]) for r in message_events(duck_warehouse)] == [
        ("m1", "clicked", None), ("m1", "opened", "a@example.com")]


def test_receiver_without_configured_secrets_refuses_everything(duck_warehouse):
    from syncs.feedback.receiver import ReceiverSecrets, create_receiver

    from .conftest import ServerThread
    with ServerThread(create_receiver(MessageEventWriter(duck_warehouse), ReceiverSecrets(None, None))) as server:
        url = f"{server.url}/twilio/status"
        twilio = post_twilio(url, PARAMS, token="")
        hook = requests.post(f"{server.url}/webhook", data=b"[]", headers={WEBHOOK_HEADER: sign_webhook(b"[]", "")})
    assert (twilio.status_code, hook.status_code) == (403, 403)
    assert "twilio_auth_token_env" in twilio.json()["error"] and "webhook_secret_env" in hook.json()["error"]
    assert message_events(duck_warehouse) == []


def test_writer_on_postgres_appends_once_as_text(pg_warehouse):
    writer = MessageEventWriter(pg_warehouse)
    rows = [{"message_id": "SM9", "channel": "sms", "event": e, "occurred_at": "2026-10-01T00:00:00Z",
             "recipient": "+15005550006", "campaign": None, "external_id": "p9"} for e in ("sent", "delivered")]
    assert writer.append(rows + rows[:1]) == 2
    assert writer.append(rows) == 0
    assert message_events(pg_warehouse) == [("SM9", "sms", "delivered", "2026-10-01T00:00:00Z", "+15005550006", None,
                                             "p9"), ("SM9", "sms", "sent", "2026-10-01T00:00:00Z", "+15005550006",
                                                     None, "p9")]


def test_callback_params_parse_like_twilio_posts_them():
    # A form with a repeated name keeps both values in the signature, as twilio-python does.
    pairs = parse_qsl("To=%2B1&MediaUrl=b&MediaUrl=a")
    assert twilio_signature("https://x/cb", pairs, "t") == twilio_signature("https://x/cb", list(reversed(pairs)), "t")
