"""Mailchimp Marketing API stand-in under `/mailchimp/3.0` (for https://<dc>.api.mailchimp.com/3.0).

Auth: HTTP Basic, any username, password `<token>` or `<token>-<dc>` (or `Bearer <token>`).
Lists are provisioned on first use (any list id exists; the sandbox has no account UI to create
them). `POST /3.0/lists/{id}` batch-subscribes up to 500 members and answers 200 with per-member
`errors[]`; `PUT/GET/DELETE /3.0/lists/{id}/members/{subscriber_hash}` (MD5 of the lowercased
email, or the email itself), `POST .../actions/delete-permanent`, and
`GET /3.0/lists/{id}/members?count=&offset=`. Errors are `application/problem+json`. More than
10 concurrent connections answer 429 without rate-limit headers (`mailchimp_concurrency`).
"""
from __future__ import annotations

import base64
import hashlib
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import Context, now_iso, read_body, valid_email

MAX_BATCH = 500
MAX_BODY = 10 * 1024 * 1024
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"


def problem(status: int, title: str, detail: str, request: Request | None = None) -> JSONResponse:
    return JSONResponse({"type": ERRORS_DOC, "title": title, "status": status, "detail": detail,
                         "instance": request.url.path if request else ""},
                        status_code=status, media_type="application/problem+json")


def throttled_response() -> JSONResponse:
    return problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")


def server_error_response() -> JSONResponse:
    return problem(503, "Service Unavailable", "Injected fault: the service is temporarily unavailable.")


def authenticated(request: Request, ctx: Context) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme == "Bearer":
        return value == ctx.token
    if scheme != "Basic":
        return False
    try:
        _, _, key = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return key == ctx.token or key.rsplit("-", 1)[0] == ctx.token


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 - Mailchimp's own id


def member_resource(list_id: str, data: dict) -> dict:
    return {"id": subscriber_hash(data["email_address"]), "list_id": list_id, **data}


def merge_member(list_id: str, existing: dict | None, body: dict,
                 update_existing: bool) -> tuple[str, dict | None, dict | None]:
    """('created'|'updated'|'error', the member to store, the per-member error)."""
    email = body.get("email_address")
    if not valid_email(email):
        return "error", None, {"email_address": email, "error": f"{email} looks fake or invalid, please enter a "
                               f"real email address.", "error_code": "ERROR_GENERIC", "field": "email_address",
                               "field_message": "Invalid email address"}
    status = body.get("status") or body.get("status_if_new")
    if existing is None and status not in STATUSES:
        return "error", None, {"email_address": email, "error": f"Invalid status {status!r}; use one of "
                               f"{', '.join(STATUSES)}.", "error_code": "ERROR_GENERIC", "field": "status",
                               "field_message": "Invalid status"}
    if existing is not None and not update_existing:
        return "error", None, {"email_address": email, "error": f"{email} is already a list member.",
                               "error_code": "ERROR_CONTACT_EXISTS", "field": "email_address",
                               "field_message": "Member exists"}
    now = now_iso()
    merged = dict(existing or {"email_address": email.strip().lower(), "timestamp_signup": now, "merge_fields": {}})
    merged["merge_fields"] = {**merged.get("merge_fields", {}), **(body.get("merge_fields") or {})}
    if body.get("status") in STATUSES:
        merged["status"] = body["status"]
    elif existing is None:
        merged["status"] = status
    for extra in ("tags", "language", "vip", "location"):
        if extra in body:
            merged[extra] = body[extra]
    merged["last_changed"] = now
    return ("updated" if existing else "created"), merged, None


async def json_body(request: Request) -> dict | JSONResponse:
    raw = await read_body(request, MAX_BODY)
    if raw is None:
        return problem(413, "Request Entity Too Large", "The request body exceeds 10 MB.", request)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return problem(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.", request)
    if not isinstance(body, dict):
        return problem(400, "Invalid Resource", "The request body must be a JSON object.", request)
    return body


async def batch_subscribe(request: Request, ctx: Context) -> Response:
    body = await json_body(request)
    if isinstance(body, JSONResponse):
        return body
    batch = body.get("members")
    if not isinstance(batch, list):
        return problem(400, "Invalid Resource", "The resource submitted could not be validated: `members` "
                       "must be an array.", request)
    if len(batch) > MAX_BATCH:
        return problem(400, "Invalid Resource", f"You can only add up to {MAX_BATCH} members per batch; got "
                       f"{len(batch)}.", request)
    list_id = request.path_params["list_id"]
    skip_dupes = request.query_params.get("skip_duplicate_check", "").lower() == "true"
    created, updated, errors, writes = [], [], [], {}
    keys = [subscriber_hash(str(m.get("email_address", ""))) if isinstance(m, dict) else "" for m in batch]
    with ctx.store.tx() as db:
        members.ensure_audience(db, "mailchimp", list_id, {"id": list_id, "name": list_id})
        current = members.get_many(db, "mailchimp", list_id, list(set(keys)))
        for key, item in zip(keys, batch):
            if key in writes and skip_dupes:
                continue
            outcome, merged, error = merge_member(list_id, current.get(key), item if isinstance(item, dict) else {},
                                                  bool(body.get("update_existing")))
            if error:
                errors.append(error)
                continue
            current[key] = writes[key] = merged
            (created if outcome == "created" else updated).append(member_resource(list_id, merged))
        members.upsert(db, "mailchimp", list_id, writes.items())
    return JSONResponse({"new_members": created, "updated_members": updated, "errors": errors,
                         "total_created": len(created), "total_updated": len(updated), "error_count": len(errors)})


def resolve_hash(raw: str) -> str:
    return subscriber_hash(raw) if "@" in raw else raw.lower()


async def member(request: Request, ctx: Context) -> Response:
    list_id, key = request.path_params["list_id"], resolve_hash(request.path_params["member"])
    with ctx.store.tx() as db:
        current = members.get(db, "mailchimp", list_id, key)
        if request.method == "PUT":
            body = await json_body(request)
            if isinstance(body, JSONResponse):
                return body
            if body.get("email_address") and subscriber_hash(body["email_address"]) != key:
                return problem(400, "Invalid Resource", "The email address does not match the subscriber hash.",
                               request)
            body.setdefault("email_address", (current or {}).get("email_address"))
            members.ensure_audience(db, "mailchimp", list_id, {"id": list_id, "name": list_id})
            _, merged, error = merge_member(list_id, current, body, True)
            if error:
                return problem(400, "Invalid Resource", error["error"], request)
            members.upsert(db, "mailchimp", list_id, [(key, merged)])
            return JSONResponse(member_resource(list_id, merged))
        if current is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.", request)
        if request.method == "DELETE":
            members.upsert(db, "mailchimp", list_id, [(key, {**current, "status": "archived"})])
            return Response(status_code=204)
        return JSONResponse(member_resource(list_id, current))


async def delete_permanent(request: Request, ctx: Context) -> Response:
    list_id, key = request.path_params["list_id"], resolve_hash(request.path_params["member"])
    with ctx.store.tx() as db:
        if members.get(db, "mailchimp", list_id, key) is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.", request)
        members.remove(db, "mailchimp", list_id, [key])
    return Response(status_code=204)


async def list_members(request: Request, ctx: Context) -> Response:
    q = request.query_params
    count = min(int(q.get("count", "10")), 1000) if q.get("count", "10").isdigit() else 10
    offset = int(q.get("offset", "0")) if q.get("offset", "0").isdigit() else 0
    list_id = request.path_params["list_id"]
    where, args = "platform = 'mailchimp' and audience = ?", [list_id]
    if q.get("status"):  # filtered before paging, as Mailchimp does: offsets and total_items count matches
        where += " and json_extract(data, '$.status') = ?"
        args.append(q["status"])
    with ctx.store.tx() as db:
        rows = [(k, json.loads(d)) for k, d in db.execute(
            f"select member_key, data from members where {where} order by member_key limit ? offset ?",
            [*args, count, offset])]
        total = db.execute(f"select count(*) from members where {where}", args).fetchone()[0]
    return JSONResponse({"members": [member_resource(list_id, d) for _, d in rows], "list_id": list_id,
                         "total_items": total})


def guarded(handler, ctx: Context):
    async def wrapped(request: Request) -> Response:
        if not authenticated(request, ctx):
            return problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access "
                           "the wrong datacenter.", request)
        return await handler(request, ctx)
    return wrapped


def routes(ctx: Context) -> Mount:
    return Mount("/mailchimp/3.0", routes=[
        Route("/lists/{list_id}", guarded(batch_subscribe, ctx), methods=["POST"]),
        Route("/lists/{list_id}/members", guarded(list_members, ctx), methods=["GET"]),
        Route("/lists/{list_id}/members/{member}", guarded(member, ctx), methods=["GET", "PUT", "DELETE"]),
        Route("/lists/{list_id}/members/{member}/actions/delete-permanent", guarded(delete_permanent, ctx),
              methods=["POST"]),
    ])


def summary(db) -> dict:
    return {"lists": members.counts(db, "mailchimp")}
