"""Pull Klaviyo events (GET /api/events) since the stored cursor into raw.message_events.

Pages `GET {base_url}/api/events?filter=greater-or-equal(datetime,<cursor>)&sort=datetime
&include=metric,profile` following `links.next`. After each page is written the cursor (the
latest event datetime seen) is saved in lifeline_state.feedback_cursors under `klaviyo`, so an
interrupted pull resumes where it stopped; events at the cursor's own second are fetched again and
skipped by the writer's (message_id, event) dedupe. Retries 429 and 5xx honouring Retry-After
(urllib3 Retry).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from syncs.feedback.cursors import CursorStore
from syncs.feedback.mapping import klaviyo_event_row
from syncs.feedback.writer import MessageEventWriter

SOURCE = "klaviyo"
REVISION = "2026-07-15"


class KlaviyoPullError(RuntimeError):
    """Klaviyo refused or failed the events request; the message says what to check."""


@dataclass
class PullResult:
    pages: int = 0
    events: int = 0
    written: int = 0
    cursor: str | None = None


def klaviyo_session(api_key: str, retries: int = 5) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Authorization": f"Klaviyo-API-Key {api_key}", "revision": REVISION,
                            "Accept": "application/vnd.api+json"})
    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def page_rows(doc: dict[str, Any]) -> tuple[list[dict], str | None]:
    """The mapped rows of one page and the latest event datetime on it."""
    included = doc.get("included") or []
    metrics = {i["id"]: (i.get("attributes") or {}).get("name", "") for i in included if i.get("type") == "metric"}
    profiles = {i["id"]: i.get("attributes") or {} for i in included if i.get("type") == "profile"}
    rows, latest = [], None
    for event in doc.get("data") or []:
        mapped = klaviyo_event_row(event, metrics, profiles)
        if mapped:
            rows.append(mapped)
        at = (event.get("attributes") or {}).get("datetime")
        if at and (latest is None or at > latest):
            latest = at
    return rows, latest


def pull_klaviyo_events(writer: MessageEventWriter, cursors: CursorStore, base_url: str, api_key: str,
                        page_size: int = 100, max_pages: int | None = None,
                        session: requests.Session | None = None) -> PullResult:
    """Pull every event since the stored cursor (all of them on the first run)."""
    http = session or klaviyo_session(api_key)
    result = PullResult(cursor=cursors.get(SOURCE))
    params: dict[str, str] | None = {"sort": "datetime", "include": "metric,profile", "page[size]": str(page_size)}
    if result.cursor:
        params["filter"] = f"greater-or-equal(datetime,{result.cursor})"
    url: str | None = f"{base_url.rstrip('/')}/api/events"
    while url and (max_pages is None or result.pages < max_pages):
        response = http.get(url, params=params, timeout=30)
        if response.status_code in (401, 403):
            raise KlaviyoPullError(f"Klaviyo refused the API key ({response.status_code}): check the variable "
                                   "named by feedback.klaviyo_api_key_env")
        if response.status_code != 200:
            raise KlaviyoPullError(f"GET {url} answered {response.status_code}: {response.text[:200]}; "
                                   f"the cursor stays at {result.cursor}, run the pull again")
        doc = response.json()
        rows, latest = page_rows(doc)
        result.written += writer.append(rows)
        result.events += len(doc.get("data") or [])
        result.pages += 1
        if latest and (result.cursor is None or latest > result.cursor):
            result.cursor = latest
            cursors.set(SOURCE, latest)
        url, params = (doc.get("links") or {}).get("next"), None
    return result
