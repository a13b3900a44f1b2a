"""Google Data Manager API stand-in under `/google/v1` (for https://datamanager.googleapis.com/v1).

`POST /google/v1/audienceMembers:ingest` and `:remove` with `Authorization: Bearer <token>`.
Body: `destinations[].productDestinationId` (the user list), `audienceMembers[].userData.userIdentifiers[]`
(`emailAddress` / `phoneNumber` as SHA-256 hex or base64 per `encoding`, `address` with hashed
names), `consent`, `termsOfService`, `encoding`, `validateOnly`. At most 10,000 members per request.
The request is validated as a whole like the real API: any bad member answers 400 INVALID_ARGUMENT
with a `google.rpc.BadRequest` listing every bad member's field path (the partial-failure report), and
nothing is applied. Success is `{"requestId": ...}`. Over the quota answers 429 RESOURCE_EXHAUSTED.

OAuth: `POST /google/oauth2/token` stands in for https://oauth2.googleapis.com/token. Form-encoded
`grant_type=refresh_token`, `client_id` (any), `client_secret` and `refresh_token` (both the sandbox
token) answer `{access_token, expires_in, token_type: "Bearer", scope}`; the token lives
`google_token_lifetime_s` seconds (option, default 3599 as Google's). A wrong refresh token answers
400 `{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}`, a wrong
client 401 `invalid_client`, another grant type 400 `unsupported_grant_type`. The Data Manager
endpoints accept the sandbox token itself (a fixed token) and issued tokens until they expire; an
expired or unknown one answers 401 UNAUTHENTICATED in Google's error shape. `POST
/_sandbox/google/expire_tokens` expires every issued token at once (as a revocation would).
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import SHA256_HEX_RE, Context, dumps, now_iso, read_body

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS = 10
MAX_BYTES = 10 * 1024 * 1024
TOKEN_LIFETIME_S = 3599
TOKENS = "google_oauth_token"  # audiences-table platform of issued access tokens: id = token, data = expiry
SCOPE = "https://www.googleapis.com/auth/datamanager"


def google_error(status: int, code: str, message: str, violations: list[dict] | None = None) -> JSONResponse:
    error: dict = {"code": status, "message": message, "status": code}
    if violations:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]
    return JSONResponse({"error": error}, status_code=status)


def throttled_response() -> JSONResponse:
    return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests' of service "
                                                   "'datamanager.googleapis.com'. Retry later.")


def server_error_response() -> JSONResponse:
    return google_error(503, "UNAVAILABLE", "Injected fault: the service is currently unavailable.")


def valid_hash(value: object, encoding: str) -> bool:
    if not isinstance(value, str):
        return False
    if encoding == "BASE64":
        try:
            return len(base64.b64decode(value, validate=True)) == 32
        except (binascii.Error, ValueError):
            return False
    return bool(SHA256_HEX_RE.match(value))


def member_violations(index: int, member: object, encoding: str) -> tuple[list[dict], list[str]]:
    path = f"audience_members[{index}].user_data.user_identifiers"
    ids = (((member or {}).get("userData") or {}).get("userIdentifiers")) if isinstance(member, dict) else None
    if not isinstance(ids, list) or not ids:
        return [{"field": path, "description": "At least one user identifier is required."}], []
    if len(ids) > MAX_IDENTIFIERS:
        return [{"field": path, "description": f"At most {MAX_IDENTIFIERS} identifiers per member."}], []
    violations, keys = [], []
    for j, ident in enumerate(ids):
        field = next(iter(ident), None) if isinstance(ident, dict) and len(ident) == 1 else None
        if field in ("emailAddress", "phoneNumber"):
            if valid_hash(ident[field], encoding):
                keys.append(f"{field}:{ident[field]}")
                continue
            violations.append({"field": f"{path}[{j}].{field}", "description": f"Invalid {encoding} SHA-256 hash; "
                               f"normalise, then hash the value."})
        elif field == "address":
            addr = ident["address"] if isinstance(ident["address"], dict) else {}
            bad = [k for k in ("givenName", "familyName") if not valid_hash(addr.get(k), encoding)]
            if bad or not addr.get("regionCode") or not addr.get("postalCode"):
                violations.append({"field": f"{path}[{j}].address", "description": "address needs hashed givenName "
                                   "and familyName plus unhashed regionCode and postalCode."})
            else:
                keys.append("address:" + "|".join(str(addr[k]) for k in ("givenName", "familyName", "regionCode",
                                                                         "postalCode")))
        else:
            violations.append({"field": f"{path}[{j}]", "description": "Each identifier is exactly one of "
                               "emailAddress, phoneNumber or address."})
    return violations, keys


async def ingest(request: Request, ctx: Context, remove: bool) -> Response:
    raw = await read_body(request, MAX_BYTES)
    if raw is None:
        return google_error(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit.")
    try:
        body = json.loads(raw)
    except ValueError:
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    destinations = body.get("destinations") if isinstance(body, dict) else None
    if not isinstance(destinations, list) or not destinations or not all(
            isinstance(d, dict) and d.get("productDestinationId") for d in destinations):
        return google_error(400, "INVALID_ARGUMENT", "destinations[] with productDestinationId is required.",
                            [{"field": "destinations", "description": "required"}])
    batch = body.get("audienceMembers")
    if not isinstance(batch, list) or not batch:
        return google_error(400, "INVALID_ARGUMENT", "audienceMembers must be a non-empty list.",
                            [{"field": "audience_members", "description": "required"}])
    if len(batch) > MAX_MEMBERS:
        return google_error(400, "INVALID_ARGUMENT", f"Too many audience members: at most {MAX_MEMBERS:,} per "
                            f"request, got {len(batch):,}.", [{"field": "audience_members",
                                                                "description": "TOO_MANY_AUDIENCE_MEMBERS"}])
    encoding = body.get("encoding", "HEX")
    if encoding not in ("HEX", "BASE64"):
        return google_error(400, "INVALID_ARGUMENT", "encoding must be HEX or BASE64.",
                            [{"field": "encoding", "description": "invalid"}])
    if not remove and ((body.get("termsOfService") or {}).get("customerMatchTermsOfServiceStatus") != "ACCEPTED"):
        return google_error(400, "INVALID_ARGUMENT", "termsOfService.customerMatchTermsOfServiceStatus must be "
                            "ACCEPTED for Customer Match.", [{"field": "terms_of_service", "description": "required"}])
    violations, rows = [], []
    for i, member in enumerate(batch):
        bad, keys = member_violations(i, member, encoding)
        violations += bad
        if keys:
            rows.append((keys[0], {"identifiers": keys, "consent": body.get("consent")}))
    if violations:
        return google_error(400, "INVALID_ARGUMENT", f"{len(violations)} invalid audience member field(s); nothing "
                            f"was applied.", violations)
    if not body.get("validateOnly"):
        with ctx.store.tx() as db:
            for d in destinations:
                list_id = str(d["productDestinationId"])
                members.ensure_audience(db, "google", list_id, {"id": list_id, "created": now_iso(),
                                                                "operatingAccount": d.get("operatingAccount")})
                if remove:
                    members.remove(db, "google", list_id, [k for k, _ in rows])
                else:
                    members.upsert(db, "google", list_id, rows)
    return JSONResponse({"requestId": str(uuid.uuid4())})


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def issue_token(request: Request, ctx: Context) -> Response:
    """The token endpoint: a refresh token exchanged for a short-lived access token."""
    form = await request.form()
    if form.get("grant_type") != "refresh_token":
        return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {str(form.get('grant_type'))[:40]}")
    if not form.get("client_id"):
        return oauth_error(400, "invalid_request", "Could not determine client ID from request.")
    if form.get("client_secret") != ctx.token:
        return oauth_error(401, "invalid_client", "Unauthorized")
    if form.get("refresh_token") != ctx.token:
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    lifetime = int(ctx.options.get("google_token_lifetime_s") or TOKEN_LIFETIME_S)
    token, now = f"ya29.sandbox-{secrets.token_urlsafe(32)}", time.time()
    with ctx.store.tx() as db:
        db.execute("delete from audiences where platform = ? and cast(json_extract(data, '$.expires') as real) < ?",
                   (TOKENS, now - 3600))
        db.execute("insert into audiences (platform, id, data) values (?,?,?)",
                   (TOKENS, token, dumps({"expires": now + lifetime})))
    return JSONResponse({"access_token": token, "expires_in": lifetime, "token_type": "Bearer", "scope": SCOPE})


def token_valid(ctx: Context, token: str) -> bool:
    """The sandbox token itself, or an issued token that has not expired."""
    if token == ctx.token:
        return True
    with ctx.store.tx() as db:
        row = db.execute("select data from audiences where platform = ? and id = ?", (TOKENS, token)).fetchone()
    return row is not None and json.loads(row[0])["expires"] > time.time()


def guarded(ctx: Context, remove: bool):
    async def wrapped(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token_valid(ctx, key):
            return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected "
                                "OAuth 2 access token, login cookie or other valid authentication credential.")
        if not ctx.limiter.check("google:api").allowed:
            return throttled_response()
        return await ingest(request, ctx, remove)
    return wrapped


def routes(ctx: Context) -> Mount:
    async def token(request: Request) -> Response:
        return await issue_token(request, ctx)

    return Mount("/google", routes=[
        Route("/v1/audienceMembers:ingest", guarded(ctx, False), methods=["POST"]),
        Route("/v1/audienceMembers:remove", guarded(ctx, True), methods=["POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
    ])


def control_routes(ctx: Context) -> list[Route]:
    async def expire_tokens(request: Request) -> JSONResponse:
        with ctx.store.tx() as db:
            expired = db.execute("update audiences set data = ? where platform = ?",
                                 (dumps({"expires": 0}), TOKENS)).rowcount
        return JSONResponse({"expired": expired})

    return [Route("/google/expire_tokens", expire_tokens, methods=["POST"])]


def summary(db) -> dict:
    return {"audiences": members.counts(db, "google")}
