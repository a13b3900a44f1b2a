"""The loop closes: an event received by the feedback receiver lands in raw.message_events, and
after `dbt build` the profile's consent reflects it (contract §1: the latest signal wins)."""
from __future__ import annotations

import json
from datetime import datetime

import requests
import sqlalchemy as sa

from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from syncs.feedback.signatures import WEBHOOK_HEADER
from syncs.sandbox.signing import sign_webhook

from .conftest import WEBHOOK_SECRET

MINI = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "mini"
AS_OF = datetime(2026, 11, 1)


def consent(warehouse, email: str) -> tuple:
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sa.text("select email_consent, sms_consent from profiles where email = :e"),
                                      {"e": email}).one())
    finally:
        engine.dispose()


def test_unsubscribe_received_by_webhook_turns_email_consent_off_after_build(receiver, duck_warehouse):
    load(duck_warehouse, MINI, replace=True)
    run_dbt(duck_warehouse, "build", as_of=AS_OF)
    assert consent(duck_warehouse, "alice.smith@example.com") == (True, True)

    # The platform echoes the address as it has it; dbt normalises it like any raw recipient.
    body = json.dumps([{"message_id": "kl-feedback-1", "channel": "email", "event": "unsubscribed",
                        "occurred_at": "2026-10-31T12:00:00Z", "recipient": " Alice.Smith@Example.com ",
                        "campaign": "welcome", "external_id": None}]).encode()
    posted = requests.post(f"{receiver.url}/webhook", data=body,
                           headers={WEBHOOK_HEADER: sign_webhook(body, WEBHOOK_SECRET)})
    assert posted.json() == {"received": 1, "written": 1}

    run_dbt(duck_warehouse, "build", as_of=AS_OF)
    assert consent(duck_warehouse, "alice.smith@example.com") == (False, True)
