"""Engagement simulation for the demo, and the events it produced, shaped like raw `message_events`.

`POST /_sandbox/simulate/engagement` with JSON `{"seed": 7, "open_rate": 0.4, "click_rate": 0.1,
"occurred_at": "2026-01-01T12:00:00Z"}` (all optional) marks, deterministically for a seed, a share
of Klaviyo list members (email: sent, delivered, opened, clicked) and Twilio messages (sms: sent,
delivered, clicked) as engaged. Re-running with the same seed adds nothing new.
`GET /_sandbox/message_events` returns the rows: message_id, channel, event, occurred_at,
recipient, campaign, external_id (the profile's external_id, i.e. the project's profile_id).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncs.sandbox.common import Context, now_iso

COLUMNS = ("message_id", "channel", "event", "occurred_at", "recipient", "campaign", "external_id")


def draw(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the parts (stable across runs and processes)."""
    digest = hashlib.sha256("|".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shifted(base: str, minutes: int) -> str:
    at = datetime.fromisoformat(base.replace("Z", "+00:00")) + timedelta(minutes=minutes)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def email_rows(db, seed: int, open_rate: float, click_rate: float, at: str) -> list[tuple]:
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
            at = str(body.get("occurred_at") or now_iso())
            shifted(at, 0)
            if not (0 <= click_rate <= open_rate <= 1):
                raise ValueError("need 0 <= click_rate <= open_rate <= 1")
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad engagement request: {exc}"}, status_code=400)
        with ctx.store.tx() as db:
            rows = email_rows(db, seed, open_rate, click_rate, at) + sms_rows(db, seed, click_rate, at)
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


def summary(db) -> dict:
    return {e: n for e, n in db.execute("select event, count(*) from message_events group by event order by event")}
