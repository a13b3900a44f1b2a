"""Meta Custom Audiences stand-in under `/meta/vNN.0` (for https://graph.facebook.com/vNN.0).

`access_token` goes as a parameter (form body or query; any `vNN.0` version). `POST` / `DELETE
/{audience_id}/users`, `POST /{audience_id}/usersreplace` and `GET /{audience_id}/sessions` take
form-encoded `payload` (JSON: schema + data, SHA-256 hex except EXTERN_ID / MADID) and `session`
(JSON: session_id, batch_seq, last_batch_flag, estimated_num_total). At most 10,000 rows per call.
Invalid rows are counted in `num_invalid_entries` with `invalid_entry_samples`. Errors use the Graph
envelope `{"error": {message, type, code, error_subcode, fbtrace_id, is_transient}}` with HTTP 400;
throttling is code 17 / subcode 2446079, and `X-Business-Use-Case-Usage` reports usage. Audiences
are provisioned on first use (any numeric id), or created with `POST /act_{id}/customaudiences`.
A usersreplace session swaps the audience's users when its `last_batch_flag` batch arrives.
Started with an app secret (option `meta_app_secret`, env LIFELINE_SANDBOX_META_APP_SECRET), it
behaves like an app with "Require App Secret" on: every call needs `appsecret_proof` = HMAC-SHA256
(hex) of the access token keyed with that secret; without one, or with a wrong one, it answers HTTP
400 OAuthException code 100 "Invalid appsecret_proof provided in the API argument".
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import SHA256_HEX_RE, Context, dumps, now_iso

MAX_ROWS = 10_000
UNHASHED = {"EXTERN_ID", "MADID", "MOBILE_ADVERTISER_ID"}
KNOWN_KEYS = {"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST", "ZIP",
              "MADID", "COUNTRY", "EMAIL_SHA256", "PHONE_SHA256", "MOBILE_ADVERTISER_ID"}
VERSION_RE = re.compile(r"^v\d+\.0$")


def graph_error(message: str, code: int, subcode: int | None = None, etype: str = "OAuthException",
                transient: bool = False, status: int = 400) -> JSONResponse:
    error = {"message": message, "type": etype, "code": code, "fbtrace_id": secrets.token_urlsafe(12),
             "is_transient": transient}
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status)


def throttled_response() -> JSONResponse:
    return graph_error("(#17) User request limit reached", 17, 2446079, transient=True)


def server_error_response() -> JSONResponse:
    return graph_error("An unexpected error has occurred. Please retry your request later.", 2,
                       etype="OAuthException", transient=True, status=500)


# Graph documents 10,000 rows per call and no byte limit; 10,000 four-key rows are ~3 MB
# form-encoded, above Starlette's default 1 MiB per field.
MAX_FIELD_BYTES = 16 * 1024 * 1024


async def params_of(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method != "GET" and "form" in request.headers.get("content-type", ""):
        form = await request.form(max_part_size=MAX_FIELD_BYTES)
        params.update({k: str(v) for k, v in form.items()})
    return params


def row_problem(schema: list[str], row: list) -> str | None:
    if len(row) != len(schema):
        return f"row has {len(row)} values for a schema of {len(schema)} keys"
    if all(v in (None, "") for v in row):
        return "empty row"
    for key, value in zip(schema, row):
        if value in (None, ""):
            continue
        if key not in UNHASHED and not SHA256_HEX_RE.match(str(value)):
            return f"{key} is not a lowercase SHA-256 hex digest (hash the normalised value)"
    return None


def parse_payload(raw: str | None) -> tuple[list[str], list[list]] | JSONResponse:
    try:
        payload = json.loads(raw or "")
    except ValueError:
        return graph_error("(#100) param payload must be a JSON object with schema and data", 100)
    if not isinstance(payload, dict):
        return graph_error("(#100) param payload must be a JSON object with schema and data", 100)
    schema, data = payload.get("schema"), payload.get("data")
    schema = [schema] if isinstance(schema, str) else schema
    if not isinstance(schema, list) or not schema or not isinstance(data, list):
        return graph_error("(#100) payload needs a schema (string or list) and a data list", 100)
    unknown = [k for k in schema if k not in KNOWN_KEYS]
    if unknown:
        return graph_error(f"(#100) Invalid schema key(s): {', '.join(map(str, unknown))}", 100)
    if len(data) > MAX_ROWS:
        return graph_error(f"(#100) Too many users in one request: at most {MAX_ROWS} per call, got {len(data)}",
                           100, 1870034)
    rows = [r if isinstance(r, list) else [r] for r in data]
    return schema, rows


def audience_of(db, audience_id: str) -> dict:
    return members.ensure_audience(db, "meta", audience_id, {"id": audience_id, "name": f"audience {audience_id}",
                                                             "subtype": "CUSTOM", "time_created": now_iso()})


async def users(request: Request, ctx: Context, replace: bool = False) -> Response:
    params = await params_of(request)
    parsed = parse_payload(params.get("payload"))
    if isinstance(parsed, JSONResponse):
        return parsed
    schema, rows = parsed
    try:
        session = json.loads(params["session"]) if params.get("session") else None
    except ValueError:
        return graph_error("(#100) param session must be a JSON object", 100)
    if replace and not isinstance(session, dict):
        return graph_error("(#100) usersreplace requires a session with session_id, batch_seq and last_batch_flag",
                           100)
    audience_id = request.path_params["audience_id"]
    good, invalid = [], {}
    for row in rows:
        problem = row_problem(schema, row)
        if problem:
            if len(invalid) < 10:
                invalid[str(row[0] if row else "")[:80]] = problem
            continue
        good.append(("|".join(str(v or "") for v in row), dict(zip(schema, row))))
    invalid_count = len(rows) - len(good)
    session_id = str((session or {}).get("session_id") or secrets.randbelow(10**12))
    with ctx.store.tx() as db:
        audience_of(db, audience_id)
        if replace:
            staging = f"{audience_id}:{session_id}"
            members.upsert(db, "meta_replace", staging, good)
            if session.get("last_batch_flag"):
                members.clear(db, "meta", audience_id)
                db.execute("insert into members (platform, audience, member_key, data, updated) select 'meta', ?, "
                           "member_key, data, updated from members where platform = 'meta_replace' and audience = ?",
                           (audience_id, staging))
                members.clear(db, "meta_replace", staging)
        elif request.method == "DELETE":
            members.remove(db, "meta", audience_id, [k for k, _ in good])
        else:
            members.upsert(db, "meta", audience_id, good)
        record_session(db, audience_id, session_id, session, len(rows), invalid_count)
    return JSONResponse({"audience_id": audience_id, "session_id": session_id, "num_received": len(rows),
                         "num_invalid_entries": invalid_count, "invalid_entry_samples": invalid})


def record_session(db, audience_id: str, session_id: str, session: dict | None, received: int, invalid: int) -> None:
    key = f"{audience_id}:{session_id}"
    row = db.execute("select data from audiences where platform = 'meta_session' and id = ?", (key,)).fetchone()
    data = json.loads(row[0]) if row else {"session_id": session_id, "start_time": now_iso(), "num_received": 0,
                                           "num_invalid_entries": 0}
    data["num_received"] += received
    data["num_invalid_entries"] += invalid
    data["num_matched"] = data["num_received"] - data["num_invalid_entries"]
    last = not session or session.get("last_batch_flag", True)
    data.update(stage="uploaded" if last else "processing", progress=100 if last else 50,
                end_time=now_iso() if last else None)
    db.execute("insert or replace into audiences (platform, id, data) values ('meta_session', ?, ?)", (key, dumps(data)))


async def sessions(request: Request, ctx: Context) -> Response:
    prefix = f"{request.path_params['audience_id']}:"
    with ctx.store.tx() as db:
        found = [v for k, v in members.audiences(db, "meta_session").items() if k.startswith(prefix)]
    return JSONResponse({"data": found})


async def audience(request: Request, ctx: Context) -> Response:
    audience_id = request.path_params["audience_id"]
    with ctx.store.tx() as db:
        info = members.audiences(db, "meta").get(audience_id)
        count = members.counts(db, "meta").get(audience_id, 0)
    if info is None:
        return graph_error(f"Unsupported get request. Object with ID '{audience_id}' does not exist", 100, 33,
                           etype="GraphMethodException")
    return JSONResponse({**info, "approximate_count_lower_bound": count, "approximate_count_upper_bound": count})


async def create_audience(request: Request, ctx: Context) -> Response:
    params = await params_of(request)
    if not params.get("name"):
        return graph_error("(#100) The parameter name is required", 100)
    audience_id = str(23800000000000000 + secrets.randbelow(10**15))
    with ctx.store.tx() as db:
        members.ensure_audience(db, "meta", audience_id, {"id": audience_id, "name": params["name"],
                                                          "subtype": params.get("subtype", "CUSTOM"),
                                                          "time_created": now_iso()})
    return JSONResponse({"id": audience_id})


def proof_ok(app_secret: str | None, token: str, proof: str | None) -> bool:
    """True when no app secret is required, or `proof` is HMAC-SHA256(app_secret, token) in hex."""
    if not app_secret:
        return True
    expected = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(proof or ""))


def guarded(handler, ctx: Context, **kwargs):
    async def wrapped(request: Request) -> Response:
        if not VERSION_RE.match(request.path_params["version"]):
            return graph_error(f"Unknown path components: /{request.path_params['version']}", 2500)
        params = await params_of(request)
        if params.get("access_token") != ctx.token:
            return graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if not proof_ok(ctx.options.get("meta_app_secret"), ctx.token, params.get("appsecret_proof")):
            return graph_error("Invalid appsecret_proof provided in the API argument", 100)
        verdict = ctx.limiter.check("meta:ca")
        response = await handler(request, ctx, **kwargs) if verdict.allowed else throttled_response()
        usage = round(100 * (verdict.limit - verdict.remaining) / verdict.limit)
        response.headers["X-Business-Use-Case-Usage"] = dumps({"sandbox": [{
            "type": "custom_audience", "call_count": usage, "total_cputime": 0, "total_time": 0,
            "estimated_time_to_regain_access": 0 if verdict.allowed else max(1, verdict.reset_s // 60)}]})
        return response
    return wrapped


def routes(ctx: Context) -> Mount:
    return Mount("/meta/{version}", routes=[
        Route("/act_{account_id}/customaudiences", guarded(create_audience, ctx), methods=["POST"]),
        Route("/{audience_id}/users", guarded(users, ctx), methods=["POST", "DELETE"]),
        Route("/{audience_id}/usersreplace", guarded(users, ctx, replace=True), methods=["POST"]),
        Route("/{audience_id}/sessions", guarded(sessions, ctx), methods=["GET"]),
        Route("/{audience_id}", guarded(audience, ctx), methods=["GET"]),
    ])


def summary(db) -> dict:
    return {"audiences": members.counts(db, "meta")}
