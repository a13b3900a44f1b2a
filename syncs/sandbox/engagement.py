"""Engagement simulation for the demo, and the events it produced, shaped like raw `message_events`.

`POST /_sandbox/simulate/engagement` with JSON `{"seed": 7, "open_rate": 0.4, "click_rate": 0.1,
"occurred_at": "2026-01-01T12:00:00Z"}` (all optional) marks, deterministically for a seed, a share
of Klaviyo list members (email: sent, delivered, opened, clicked) and Twilio messages (sms: sent,
delivered, clicked) as engaged. Re-running with the same seed adds nothing new.
`GET /_sandbox/message_events` returns the rows: message_id, channel, event, occurred_at,
recipient, campaign, external_id (the profile's external_id, i.e. the project's profile_id).
`unsubscribe_rate` (default 0) also marks a share of the email recipients `unsubscribed`.

`GET /klaviyo/api/events` (routed in klaviyo.py, with Klaviyo's auth and rate class) serves the email rows as Klaviyo's `GET /api/events` does
(JSON:API `event` resources with `metric` and `profile` relationships, `include=metric,profile`,
`filter=greater-or-equal(datetime,...)` or `greater-than`, `sort=datetime`, `page[size]` up to 200,
`links.next`), so the feedback puller can point its base URL at `{sandbox}/klaviyo`, as at Klaviyo.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncs.sandbox.common import Context, decode_cursor, encode_cursor, now_iso
from syncs.sandbox.profile_keys import profile_keys

COLUMNS = ("message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id")


def draw(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts (stable across runs and processes)."""
    digest = hashlib.sha256("|".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shifted(base: str, minutes: int) -> str:
    at = datetime.fromisoformat(base.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def email_rows(db, seed: int, open_rate: float, click_rate: float, at: str,
               unsubscribe_rate: float = 0.0) -> list[tuple]:
    rows = []
    for list_name, email, ext, pid in db.execute(
            "select l.name, p.email, p.external_id, p.id from kl_list_members m join kl_lists l on l.id = m.list_id "
            "join kl_profiles p on p.id = m.profile_id where p.email is not null order by l.name, p.id"):
        message_id = "kl-" + hashlib.sha256(f"{list_name}|{ext or email}".encode()).hexdigest()[:24]
        base = (message_id, "email")
        rows += [(*base, "sent", at, email, list_name, ext), (*base, "delivered", shifted(at, 1), email, list_name, ext)]
        if draw(seed, "open", message_id) < open_rate:
            rows.append((*base, "opened", shifted(at, 30), email, list_name, ext))
            if draw(seed, "click", message_id) < click_rate / max(open_rate, 1e-9):
                rows.append((*base, "clicked", shifted(at, 35), email, list_name, ext))
        if unsubscribe_rate and draw(seed, "unsubscribe", message_id) < unsubscribe_rate:
            rows.append((*base, "unsubscribed", shifted(at, 40), email, list_name, ext))
    return rows


def sms_rows(db, seed: int, click_rate: float, at: str) -> list[tuple]:
    rows = []
    for sid, recipient, data in db.execute("select sid, recipient, data from tw_messages order by created, sid"):
        labels = json.loads(data).get("_labels", {})
        base = (sid, "sms")
        campaign, ext = labels.get("campaign"), labels.get("external_id")
        rows += [(*base, "sent", at, recipient, campaign, ext), (*base, "delivered", shifted(at, 1), recipient,
                                                                  campaign, ext)]
        if draw(seed, "click", recipient, campaign or "", ext or "") < click_rate:
            rows.append((*base, "clicked", shifted(at, 10), recipient, campaign, ext))
    return rows


def control_routes(ctx: Context) -> list[Route]:
    async def simulate(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
            seed = int(body.get("seed", 0))
            open_rate, click_rate = float(body.get("open_rate", 0.4)), float(body.get("click_rate", 0.1))
            unsubscribe_rate = float(body.get("unsubscribe_rate", 0.0))
            if not 0 <= unsubscribe_rate <= 1:
                raise ValueError("need 0 <= unsubscribe_rate <= 1")
            at = str(body.get("occurred_at") or now_iso())
            shifted(at, 0)
            if not (0 <= click_rate <= open_rate <= 1):
                raise ValueError("need 0 <= click_rate <= open_rate <= 1")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad engagement request: {exc}"}, status_code=400)
        with ctx.store.tx() as db:
            rows = email_rows(db, seed, open_rate, click_rate, at, unsubscribe_rate) + sms_rows(db, seed, click_rate, at)
            before = db.total_changes
            db.executemany(f"insert or ignore into message_events ({', '.join(COLUMNS)}) values (?,?,?,?,?,?,?)", rows)
            added = db.total_changes - before
        return JSONResponse({"events_added": added})

    async def events(request: Request) -> JSONResponse:
        with ctx.store.tx() as db:
            rows = db.execute(f"select {', '.join(COLUMNS)} from message_events order by occurred_at, message_id, "
                              "event").fetchall()
        return JSONResponse({"message_events": [dict(zip(COLUMNS, r)) for r in rows]})

    return [Route("/simulate/engagement", simulate, methods=["POST"]),
            Route("/message_events", events, methods=["GET"])]


KLAVIYO_METRIC = {"delivered": "Received Email", "opened": "Opened Email", "clicked": "Clicked Email",
                  "bounced": "Bounced Email", "unsubscribed": "Unsubscribed from Email Marketing",
                  "complained": "Marked Email as Spam", "failed": "Dropped Email"}
DATETIME_FILTER = re.compile(r"^(greater-or-equal|greater-than)\(datetime,([^)]+)\)$")


def _klaviyo_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"errors": [{"status": status, "code": "invalid" if status == 400 else "not_authenticated",
                                     "title": "Invalid input." if status == 400 else "Authentication failed.",
                                     "detail": detail}]}, status_code=status)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))


async def klaviyo_events(request: Request, ctx: Context) -> JSONResponse:
    """Served through klaviyo.endpoint(), which checks auth (API key or OAuth), revision and rate."""
    q = request.query_params
    try:
        size = int(q.get("page[size]", "100"))
        offset = int(decode_cursor(q["page[cursor]"])) if q.get("page[cursor]") else 0
        if not 1 <= size <= 200:
            raise ValueError("page[size] must be between 1 and 200")
        match = DATETIME_FILTER.match(q.get("filter", "")) if q.get("filter") else None
        if q.get("filter") and not match:
            raise ValueError("filter supports greater-or-equal(datetime,X) or greater-than(datetime,X)")
        since = _instant(match.group(2)) if match else None
    except ValueError as exc:
        return _klaviyo_error(400, str(exc))
    with ctx.store.tx() as db:
        events = db.execute("select message_id, event, occurred_at, recipient, campaign, external_id "
                            "from message_events where channel = 'email' "
                            "order by occurred_at, message_id, event").fetchall()
        keys = profile_keys(ctx.store)  # the profile: the one with the event's external_id, else its email
        by_external = keys.first_ids(db, "external_id", {e[5] for e in events if e[5] is not None})
        by_email = keys.first_ids(db, "email", {e[3] for e in events if e[3] is not None})
    rows = [(*e, by_external.get(e[5]) or by_email.get(e[3])) for e in events]
    rows = [r for r in rows if r[1] in KLAVIYO_METRIC and r[6]]
    if since is not None:
        op = match.group(1)
        rows = [r for r in rows if (_instant(r[2]) >= since if op == "greater-or-equal" else _instant(r[2]) > since)]
    page = rows[offset:offset + size]
    data, included = [], {}
    for message_id, event, at, email, campaign, ext, profile_id in page:
        metric_id = hashlib.sha256(KLAVIYO_METRIC[event].encode()).hexdigest()[:6].upper()
        event_id = hashlib.sha256(f"{message_id}|{event}".encode()).hexdigest()[:26]
        data.append({"type": "event", "id": event_id,
                     "links": {"self": f"{str(request.url).split('?', 1)[0].rstrip('/')}/{event_id}/"},
                     "attributes": {"timestamp": int(_instant(at).timestamp()),
                                    "datetime": _instant(at).isoformat(),
                                    "event_properties": {"$message": message_id, "Campaign Name": campaign}},
                     "relationships": {"metric": {"data": {"type": "metric", "id": metric_id}},
                                       "profile": {"data": {"type": "profile", "id": profile_id}}}})
        included[("metric", metric_id)] = {"type": "metric", "id": metric_id,
                                           "attributes": {"name": KLAVIYO_METRIC[event]}}
        included[("profile", profile_id)] = {"type": "profile", "id": profile_id,
                                             "attributes": {"email": email, "external_id": ext}}
    nxt = None
    if offset + size < len(rows):
        params = {**dict(q), "page[cursor]": encode_cursor(str(offset + size))}
        nxt = f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}"
    return JSONResponse({"data": data, "included": list(included.values()) if "include" in q else [],
                         "links": {"self": str(request.url), "next": nxt, "prev": None}})


def summary(db) -> dict:
    return {e: n for e, n in db.execute("select event, count(*) from message_events group by event order by event")}
