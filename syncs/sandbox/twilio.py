"""Twilio Programmable Messaging stand-in under `/twilio` (for https://api.twilio.com).

`POST /twilio/2010-04-01/Accounts/{AccountSid}/Messages.json` (form-encoded; HTTP Basic
`AccountSid:token`, the sid must start with AC and match the path), `GET .../Messages.json`
(PageSize, Page, To, From filters) and `GET .../Messages/{sid}.json`. Errors use Twilio's JSON
`{code, message, more_info, status}`: 20003 bad credentials (401), 21211 invalid To, 21603
missing From, 21602 missing Body, 21617 Body over 1,600 characters, 21610 opted-out recipient
(all 400), 20429 too many requests (429). With `StatusCallback`, a background task POSTs `sent`
then `delivered` form-encoded callbacks signed with `X-Twilio-Signature`. The callback URL's query
parameters `campaign` and `external_id` (if present) label the message in `/_sandbox/message_events`.
"""
from __future__ import annotations

import base64
import json
import math
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox.common import Context, dumps, now_iso, short_id, valid_e164
from syncs.sandbox.signing import twilio_signature

MAX_BODY_CHARS = 1_600
MORE_INFO = "https://www.twilio.com/docs/errors/{}"


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "more_info": MORE_INFO.format(code), "status": status},
                        status_code=status)


def throttled_response() -> JSONResponse:
    return twilio_error(429, 20429, "Too Many Requests")


def server_error_response() -> JSONResponse:
    return twilio_error(503, 20500, "Injected fault: Internal Server Error; retry later")


def authenticate(request: Request, ctx: Context) -> JSONResponse | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":") if scheme == "Basic" else ("", "", "")
    except (ValueError, UnicodeDecodeError):
        user, password = "", ""
    if not user.startswith("AC") or user != request.path_params["account_sid"] or password != ctx.token:
        return twilio_error(401, 20003, "Authenticate")
    return None


def message_sid() -> str:
    return "SM" + short_id(32).lower()


def segments(body: str) -> int:
    gsm = all(ord(c) < 128 for c in body)
    single, multi = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / multi)


def resource(request: Request, sid: str, account: str, form: dict, status: str, now: str) -> dict:
    uri = f"/2010-04-01/Accounts/{account}/Messages/{sid}.json"
    body = form.get("Body", "")
    return {"sid": sid, "account_sid": account, "status": status, "to": form["To"], "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "body": body,
            "num_segments": str(segments(body)), "num_media": "0", "direction": "outbound-api",
            "error_code": None, "error_message": None, "price": None, "price_unit": "USD",
            "api_version": "2010-04-01", "date_created": now, "date_updated": now, "date_sent": None,
            "uri": uri, "subresource_uris": {"media": uri.replace(".json", "/Media.json")}}


def validate(form: dict) -> JSONResponse | None:
    to = form.get("To", "")
    if not to:
        return twilio_error(400, 21604, "A 'To' phone number is required.")
    if not valid_e164(to):
        return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to[:3]}...")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(400, 21603, "A 'From' phone number is required.")
    if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
        return twilio_error(400, 21602, "Message body is required.")
    if len(form.get("Body", "")) > MAX_BODY_CHARS:
        return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    return None


def send_callbacks(ctx: Context, url: str, message: dict) -> None:
    """Runs after the response: POST sent, then delivered, each signed like Twilio signs them."""
    for status in ("sent", "delivered"):
        params = {"MessageSid": message["sid"], "SmsSid": message["sid"], "MessageStatus": status,
                  "SmsStatus": status, "AccountSid": message["account_sid"], "From": message["from"] or "",
                  "To": message["to"], "ApiVersion": "2010-04-01"}
        if message.get("messaging_service_sid"):
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        message = dict(message, status=status, date_updated=now_iso())
        with ctx.store.tx() as db:
            db.execute("update tw_messages set data = ? where sid = ?", (dumps(message), message["sid"]))
        try:
            httpx.post(url, data=params, timeout=5,
                       headers={"X-Twilio-Signature": twilio_signature(url, params, ctx.token)})
        except httpx.HTTPError:
            return  # Twilio gives up on an unreachable callback as well


async def create_message(request: Request, ctx: Context) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    problem = validate(form)
    if problem:
        return problem
    account, now = request.path_params["account_sid"], now_iso()
    with ctx.store.tx() as db:
        if db.execute("select 1 from tw_optouts where phone = ?", (form["To"],)).fetchone():
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = message_sid()
        message = resource(request, sid, account, form, "queued", now)
        callback = form.get("StatusCallback")
        labels = {k: v[0] for k, v in parse_qs(urlsplit(callback or "").query).items()
                  if k in ("campaign", "external_id")}
        db.execute("insert into tw_messages (sid, account_sid, recipient, data, created) values (?,?,?,?,?)",
                   (sid, account, form["To"], dumps({**message, "_labels": labels}), now))
    task = BackgroundTask(send_callbacks, ctx, callback, {**message, "_labels": labels}) if callback else None
    return JSONResponse(message, status_code=201, background=task)


def public(message: dict) -> dict:
    return {k: v for k, v in message.items() if not k.startswith("_")}


async def list_messages(request: Request, ctx: Context) -> Response:
    q = request.query_params
    size = min(int(q.get("PageSize", "50")), 1000) if q.get("PageSize", "50").isdigit() else 50
    page = int(q.get("Page", "0")) if q.get("Page", "0").isdigit() else 0
    sql, args = "select data from tw_messages where account_sid = ?", [request.path_params["account_sid"]]
    if q.get("To"):
        sql += " and recipient = ?"
        args.append(q["To"])
    with ctx.store.tx() as db:
        rows = db.execute(sql + " order by created desc, sid limit ? offset ?", [*args, size + 1, page * size]).fetchall()
    base = f"/2010-04-01/Accounts/{request.path_params['account_sid']}/Messages.json"
    more = len(rows) > size
    messages = [public(json.loads(r[0])) for r in rows[:size]]
    if q.get("From"):
        messages = [m for m in messages if m["from"] == q["From"]]
    return JSONResponse({"messages": messages, "page": page, "page_size": size, "start": page * size,
                         "end": page * size + len(messages) - 1, "uri": f"{base}?PageSize={size}&Page={page}",
                         "first_page_uri": f"{base}?PageSize={size}&Page=0",
                         "next_page_uri": f"{base}?PageSize={size}&Page={page + 1}" if more else None,
                         "previous_page_uri": f"{base}?PageSize={size}&Page={page - 1}" if page else None})


async def get_message(request: Request, ctx: Context) -> Response:
    with ctx.store.tx() as db:
        row = db.execute("select data from tw_messages where sid = ? and account_sid = ?",
                         (request.path_params["message_sid"], request.path_params["account_sid"])).fetchone()
    if row is None:
        return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
    return JSONResponse(public(json.loads(row[0])))


async def delete_message(request: Request, ctx: Context) -> Response:
    """Twilio deletes a message record with 204 (404 when there is none)."""
    with ctx.store.tx() as db:
        gone = db.execute("delete from tw_messages where sid = ? and account_sid = ?",
                          (request.path_params["message_sid"], request.path_params["account_sid"])).rowcount
    if not gone:
        return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
    return Response(status_code=204)


def guarded(handler, ctx: Context):
    async def wrapped(request: Request) -> Response:
        denied = authenticate(request, ctx)
        if denied:
            return denied
        if not ctx.limiter.check("twilio:api", request.path_params["account_sid"]).allowed:
            return throttled_response()
        return await handler(request, ctx)
    return wrapped


def routes(ctx: Context) -> Mount:
    base = "/2010-04-01/Accounts/{account_sid}"
    return Mount("/twilio", routes=[
        Route(f"{base}/Messages.json", guarded(create_message, ctx), methods=["POST"]),
        Route(f"{base}/Messages.json", guarded(list_messages, ctx), methods=["GET"]),
        Route(f"{base}/Messages/{{message_sid}}.json", guarded(get_message, ctx), methods=["GET"]),
        Route(f"{base}/Messages/{{message_sid}}.json", guarded(delete_message, ctx), methods=["DELETE"]),
    ])


def control_routes(ctx: Context) -> list[Route]:
    async def optouts(request: Request) -> JSONResponse:
        if request.method == "POST":
            body = json.loads(await request.body() or b"{}")
            numbers = body.get("numbers") or []
            bad = [n for n in numbers if not valid_e164(n)]
            if bad or not isinstance(numbers, list):
                return JSONResponse({"error": f"numbers must be E.164 strings; bad: {bad[:3]}"}, status_code=400)
            with ctx.store.tx() as db:
                db.executemany("insert or ignore into tw_optouts (phone, added) values (?,?)",
                               [(n, now_iso()) for n in numbers])
        with ctx.store.tx() as db:
            return JSONResponse({"numbers": [p for (p,) in db.execute("select phone from tw_optouts order by phone")]})

    async def inbound(request: Request) -> JSONResponse:
        """Simulates an inbound SMS: STOP (and synonyms) opts the sender out, START opts back in."""
        form = dict(await request.form()) if "form" in request.headers.get("content-type", "") \
            else json.loads(await request.body() or b"{}")
        sender, word = str(form.get("From", "")), str(form.get("Body", "")).strip().upper()
        if not valid_e164(sender):
            return JSONResponse({"error": "From must be an E.164 phone number"}, status_code=400)
        now = now_iso()
        with ctx.store.tx() as db:
            if word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
                db.execute("insert or ignore into tw_optouts (phone, added) values (?,?)", (sender, now))
                db.execute("insert or ignore into message_events (message_id, channel, event, occurred_at, recipient,"
                           " campaign, external_id) values (?,?,?,?,?,?,?)",
                           (f"inbound-{sender}-{now}", "sms", "opted_out", now, sender, None, None))
                return JSONResponse({"opted_out": sender})
            if word in ("START", "UNSTOP", "YES"):
                db.execute("delete from tw_optouts where phone = ?", (sender,))
                return JSONResponse({"opted_in": sender})
        return JSONResponse({"ignored": word})

    return [Route("/twilio/optouts", optouts, methods=["GET", "POST"]),
            Route("/twilio/inbound", inbound, methods=["POST"])]


def summary(db) -> dict:
    messages = db.execute("select count(*) from tw_messages").fetchone()[0]
    optouts = db.execute("select count(*) from tw_optouts").fetchone()[0]
    return {"messages": messages, "optouts": optouts}
