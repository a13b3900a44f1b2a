"""Braze REST stand-in under `/braze` (for https://rest.<instance>.braze.com).

Auth `Authorization: Bearer <token>`. `POST /users/track` takes up to 75 objects combined across
attributes/events/purchases (current docs [B5]); payloads over 4 MB answer 413; each object needs
an identifier (external_id, user_alias, braze_id, email or phone) and a valid email / E.164 phone,
otherwise it is listed in `errors[]` while the rest is processed (`"message": "success"`).
Custom attribute values follow the user attributes object: `{"add": [...], "remove": [...]}` adds to /
removes from an array attribute (a set: an added value already present moves to the end; at most
25 elements, the oldest dropped), `{"inc": n}` increments a number, `null` removes the attribute.
`POST /users/delete` takes up to 50 ids of a single identifier type. `POST /users/export/ids` reads
users back. Every response carries `X-RateLimit-Limit/Remaining/Reset` (epoch seconds); /users/track
allows 3,000 requests per 3 s, /users/delete 20,000 per minute; over the limit answers 429.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import Context, read_body, valid_e164, valid_email

MAX_OBJECTS = 75
MAX_ARRAY = 25  # default maximum elements of an array custom attribute
MAX_DELETE = 50
MAX_BYTES = 4 * 1024 * 1024
ID_FIELDS = ("external_id", "braze_id", "user_alias", "email", "phone")
DELETE_TYPES = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")


def throttled_response() -> JSONResponse:
    return JSONResponse({"message": "Too Many Requests"}, status_code=429)


def server_error_response() -> JSONResponse:
    return JSONResponse({"message": "Injected fault: internal server error"}, status_code=503)


def user_key(obj: dict) -> str | None:
    if obj.get("external_id"):
        return f"external_id:{obj['external_id']}"
    if obj.get("braze_id"):
        return f"braze_id:{obj['braze_id']}"
    if isinstance(obj.get("user_alias"), dict):
        alias = obj["user_alias"]
        return f"alias:{alias.get('alias_label')}:{alias.get('alias_name')}"
    if obj.get("email"):
        return f"email:{str(obj['email']).strip().lower()}"
    if obj.get("phone"):
        return f"phone:{obj['phone']}"
    return None


def apply_attributes(user: dict, obj: dict) -> dict:
    """The user after one attributes object: plain values set, array add/remove, inc, null removes."""
    out = dict(user)
    for name, value in obj.items():
        if name.startswith("_"):
            continue
        if isinstance(value, dict) and value and set(value) <= {"add", "remove"}:
            items = [v for v in (out.get(name) if isinstance(out.get(name), list) else [])
                     if v not in (value.get("remove") or []) and v not in (value.get("add") or [])]
            out[name] = (items + list(value.get("add") or []))[-MAX_ARRAY:]
        elif isinstance(value, dict) and set(value) == {"inc"} and isinstance(value["inc"], int):
            out[name] = (out.get(name) if isinstance(out.get(name), (int, float)) else 0) + value["inc"]
        elif value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def object_error(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return "Object must be a JSON object"
    if user_key(obj) is None:
        return "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
    if obj.get("email") not in (None, "") and not valid_email(obj["email"]):
        return "Invalid 'email' value"
    if obj.get("phone") not in (None, "") and not valid_e164(obj["phone"]):
        return "Invalid 'phone' value"
    return None


async def track(request: Request, ctx: Context) -> Response:
    raw = await read_body(request, MAX_BYTES)
    if raw is None:
        return JSONResponse({"message": "Payload too large: the limit is 4 MB."}, status_code=413)
    try:
        body = json.loads(raw)
    except ValueError:
        return JSONResponse({"message": "Invalid JSON body", "errors": []}, status_code=400)
    arrays = {k: body.get(k) or [] for k in ("attributes", "events", "purchases")} if isinstance(body, dict) else {}
    total = sum(len(v) for v in arrays.values() if isinstance(v, list))
    if not total or not all(isinstance(v, list) for v in arrays.values()):
        return JSONResponse({"message": "Valid data must be provided in the 'attributes', 'events', or "
                                        "'purchases' fields.", "errors": []}, status_code=400)
    if total > MAX_OBJECTS:
        return JSONResponse({"message": f"Too many objects: at most {MAX_OBJECTS} attributes, events and "
                                        f"purchases combined per request; got {total}.", "errors": []},
                            status_code=400)
    errors, processed = [], {k: 0 for k in arrays}
    with ctx.store.tx() as db:
        for array, objects in arrays.items():
            for index, obj in enumerate(objects):
                problem = object_error(obj)
                if problem:
                    errors.append({"type": problem, "input_array": array, "index": index})
                    continue
                processed[array] += 1
                key = user_key(obj)
                user = members.get(db, "braze", "users", key)
                if array == "attributes":
                    if user is None and obj.get("_update_existing_only"):
                        continue
                    user = apply_attributes(user or {}, obj)
                else:
                    user = dict(user or {k: obj[k] for k in ID_FIELDS if k in obj})
                    user[f"{array}_count"] = user.get(f"{array}_count", 0) + 1
                members.upsert(db, "braze", "users", [(key, user)])
    out: dict = {"message": "success", **{f"{k}_processed": v for k, v in processed.items() if arrays[k]}}
    if errors:
        out["errors"] = errors
    return JSONResponse(out, status_code=201)


async def delete(request: Request, ctx: Context) -> Response:
    body = json.loads(await request.body() or b"{}")
    kinds = [k for k in DELETE_TYPES if body.get(k)]
    if len(kinds) != 1:
        return JSONResponse({"message": f"Provide exactly one of {', '.join(DELETE_TYPES)}."}, status_code=400)
    ids = body[kinds[0]]
    if len(ids) > MAX_DELETE:
        return JSONResponse({"message": f"At most {MAX_DELETE} identifiers per request; got {len(ids)}."},
                            status_code=400)
    prefix = {"external_ids": "external_id", "braze_ids": "braze_id", "email_addresses": "email",
              "phone_numbers": "phone"}.get(kinds[0])
    keys = [f"alias:{a.get('alias_label')}:{a.get('alias_name')}" for a in ids] if prefix is None else \
        [f"{prefix}:{str(i).strip().lower() if prefix == 'email' else i}" for i in ids]
    with ctx.store.tx() as db:
        found = [k for k in keys if members.get(db, "braze", "users", k) is not None]
        members.remove(db, "braze", "users", found)
    return JSONResponse({"deleted": len(found), "message": "success"}, status_code=202)


async def export_ids(request: Request, ctx: Context) -> Response:
    body = json.loads(await request.body() or b"{}")
    keys = [f"external_id:{i}" for i in body.get("external_ids") or []] + \
           [f"email:{str(e).strip().lower()}" for e in ([body["email_address"]] if body.get("email_address") else [])]
    with ctx.store.tx() as db:
        users = [u for k in keys if (u := members.get(db, "braze", "users", k)) is not None]
    return JSONResponse({"users": users, "message": "success"}, status_code=201)


def guarded(handler, ctx: Context, limit_class: str):
    async def wrapped(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or key != ctx.token:
            return JSONResponse({"message": "Invalid API key: the Authorization header must be "
                                            "'Bearer <REST API key>'"}, status_code=401)
        verdict = ctx.limiter.check(limit_class)
        response = await handler(request, ctx) if verdict.allowed else throttled_response()
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        response.headers["X-RateLimit-Reset"] = str(verdict.reset_epoch)
        return response
    return wrapped


def routes(ctx: Context) -> Mount:
    return Mount("/braze", routes=[
        Route("/users/track", guarded(track, ctx, "braze:users_track"), methods=["POST"]),
        Route("/users/delete", guarded(delete, ctx, "braze:users_delete"), methods=["POST"]),
        Route("/users/export/ids", guarded(export_ids, ctx, "braze:default"), methods=["POST"]),
    ])


def summary(db) -> dict:
    return {"users": members.counts(db, "braze").get("users", 0)}
