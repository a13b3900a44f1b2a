"""Shared by the trigger-mode tests: SMS audience rows with entered_at, a Twilio trigger syncs.yml,
and what the sandbox's Twilio holds (read back through its real list endpoint)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import requests
import sqlalchemy as sa

TOKEN = "sandbox-token"
ACCOUNT_SID = "AC" + "1" * 32
ENV = {"TEST_TWILIO_SID": ACCOUNT_SID, "TEST_TWILIO_TOKEN": TOKEN}
FROM = "+15005550006"
ENTERED = datetime(2026, 11, 1, 10, 0)
BODY = "Hi {first_name}, {product_name} is still in your cart. Reply STOP to opt out."


def sms_people(n: int, start: int = 0, country: str = "+1201555", **extra) -> list[dict]:
    """People with New Jersey (+1 201, America/New_York) numbers unless `country` says otherwise."""
    return [dict({"profile_id": f"p_{i:05d}", "phone": f"{country}{i:04d}", "entered_at": ENTERED,
                  "payload": json.dumps({"first_name": f"Ann{i}", "product_name": "Tea"})}, **extra)
            for i in range(start, start + n)]


def set_sms_audience(warehouse, members: list[dict], audience: str = "cart_abandonment") -> None:
    engine = warehouse.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("drop table if exists audience_members"))
        conn.execute(sa.text("create table audience_members (audience varchar, profile_id varchar, channel varchar, "
                             "entered_at timestamp, email varchar, phone varchar, is_holdout boolean, payload varchar)"))
        if members:
            conn.execute(sa.text("insert into audience_members values (:audience, :profile_id, 'sms', :entered_at, "
                                 "null, :phone, :is_holdout, :payload)"),
                         [dict({"audience": audience, "is_holdout": False}, **m) for m in members])
    engine.dispose()


def write_config(path: Path, base_url: str, *, quiet_hours: str = "null", body: str = BODY, name: str = "sms_cart",
                 extra: str = "") -> Path:
    path.write_text(f"""syncs:
  - name: {name}
    source: {{audience: cart_abandonment, channel: sms}}
    mode: trigger
    destination:
      type: twilio
      base_url: "{base_url}/twilio"
      account_sid_env: TEST_TWILIO_SID
      api_key_env: TEST_TWILIO_TOKEN
      from_number: "{FROM}"
      client_rate_limits: false
    message: {{body: {json.dumps(body)}}}
    quiet_hours: {quiet_hours}
    safety: {{max_add_multiple: 1000}}
{extra}""")
    return path


def messages(base_url: str) -> list[dict]:
    """Every message the sandbox's Twilio account holds, through GET Messages.json (paged)."""
    url: str | None = f"{base_url}/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=1000"
    out: list[dict] = []
    while url:
        page = requests.get(url, auth=(ACCOUNT_SID, TOKEN), timeout=10).json()
        out += page["messages"]
        url = f"{base_url}/twilio{page['next_page_uri']}" if page.get("next_page_uri") else None
    return out


def per_recipient(base_url: str) -> Counter:
    return Counter(m["to"] for m in messages(base_url))


def key_states(warehouse, sync_name: str = "sms_cart") -> dict[str, tuple[str, str | None]]:
    """idempotency_key -> (status, destination_id)."""
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("trigger_keys", schema="lifeline_state"):
                return {}
            return {k: (s, d) for k, s, d in conn.execute(sa.text(
                "select idempotency_key, status, destination_id from lifeline_state.trigger_keys "
                "where sync_name = :n"), {"n": sync_name})}
    finally:
        engine.dispose()


def query(warehouse, sql: str, **params) -> list[tuple]:
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()
