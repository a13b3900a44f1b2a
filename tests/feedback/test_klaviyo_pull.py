"""The Klaviyo events puller against the sandbox: pages, resumes from its stored cursor, writes once."""
from __future__ import annotations

import pytest
import requests

from syncs.feedback.cursors import CursorStore
from syncs.feedback.klaviyo_pull import SOURCE, KlaviyoPullError, pull_klaviyo_events
from syncs.feedback.writer import MessageEventWriter

from .conftest import TWILIO_TOKEN as TOKEN
from .conftest import message_events

HEADERS = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15",
           "Content-Type": "application/vnd.api+json"}


def seed_engagement(base_url: str, people: int = 40, **rates) -> list[dict]:
    api = f"{base_url}/klaviyo/api"
    list_id = requests.post(f"{api}/lists", json={"data": {"type": "list", "attributes": {"name": "welcome"}}},
                            headers=HEADERS).json()["data"]["id"]
    profiles = [{"type": "profile", "attributes": {"email": f"u{i}@e.com", "external_id": f"p{i}"}}
                for i in range(people)]
    job = requests.post(f"{api}/profile-bulk-import-jobs", headers=HEADERS, json={"data": {
        "type": "profile-bulk-import-job", "attributes": {"profiles": {"data": profiles}},
        "relationships": {"lists": {"data": [{"type": "list", "id": list_id}]}}}})
    assert job.status_code == 202
    body = {"seed": 3, "open_rate": 0.5, "click_rate": 0.2, "occurred_at": "2026-10-01T00:00:00Z", **rates}
    assert requests.post(f"{base_url}/_sandbox/simulate/engagement", json=body).status_code == 200
    return requests.get(f"{base_url}/_sandbox/message_events").json()["message_events"]


def test_pull_pages_resumes_from_its_cursor_and_writes_each_event_once(sandbox, duck_warehouse):
    events = seed_engagement(sandbox.base_url, unsubscribe_rate=0.1)
    expected = sorted((r["external_id"], r["event"]) for r in events if r["event"] != "sent")
    assert {"opened", "clicked", "unsubscribed", "delivered"} <= {e for _, e in expected}
    writer, cursors = MessageEventWriter(duck_warehouse), CursorStore(duck_warehouse)
    base = f"{sandbox.base_url}/klaviyo"

    # 40 'delivered' share one second: the first pull stops two pages past them.
    first = pull_klaviyo_events(writer, cursors, base, TOKEN, page_size=10, max_pages=5)
    assert (first.pages, first.written) == (5, 50) and cursors.get(SOURCE) == first.cursor
    assert first.cursor == "2026-10-01T00:30:00+00:00"
    rest = pull_klaviyo_events(writer, cursors, base, TOKEN, page_size=10)
    # The resumed pull starts at the cursor's timestamp, not at the beginning.
    assert rest.events < len(expected) and first.written + rest.written == len(expected)
    rows = message_events(duck_warehouse)
    assert sorted((r[6], r[2]) for r in rows) == expected
    assert {r[1] for r in rows} == {"email"} and {r[5] for r in rows} == {"welcome"}
    assert all(r[0].startswith("klaviyo:kl-") and r[4].endswith("@e.com") for r in rows)

    again = pull_klaviyo_events(writer, cursors, base, TOKEN, page_size=10)
    assert again.written == 0 and len(message_events(duck_warehouse)) == len(expected)


def test_refused_key_names_the_setting_and_moves_nothing(sandbox, duck_warehouse):
    seed_engagement(sandbox.base_url, people=5)
    cursors = CursorStore(duck_warehouse)
    with pytest.raises(KlaviyoPullError, match="klaviyo_api_key_env"):
        pull_klaviyo_events(MessageEventWriter(duck_warehouse), cursors, f"{sandbox.base_url}/klaviyo",
                            "wrong-key")
    assert cursors.get(SOURCE) is None and message_events(duck_warehouse) == []


def test_cursor_store_on_postgres(pg_warehouse):
    cursors = CursorStore(pg_warehouse)
    assert cursors.get(SOURCE) is None
    cursors.set(SOURCE, "2026-10-01T00:00:00+00:00")
    cursors.set(SOURCE, "2026-10-02T00:00:00+00:00")
    assert cursors.get(SOURCE) == "2026-10-02T00:00:00+00:00"
