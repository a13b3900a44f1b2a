"""TikTok Ads Customer File stand-in under `/tiktok/open_api/v1.3` (for business-api.tiktok.com).

Header `Access-Token: <token>`. Every answer is HTTP 200 with the envelope `{code, message,
request_id, data}`: 0 OK, 40001 bad parameter, 40061 invalid batch size, 40062 PII not hashed,
40100 request too frequent, 40105 bad access token. `POST /dmp/custom_audience/file/upload/`
(multipart: advertiser_id, file (.csv/.txt, one hashed id per line), file_signature = MD5 of the
file, calculate_type) returns `data.file_path`; `POST /dmp/custom_audience/create/` and
`POST /dmp/custom_audience/update/` (action APPEND | REMOVE | REPLACE) apply uploaded files. As
documented, an update that would leave fewer than 1,000 members fails (`tiktok_min_audience`).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import SHA256_HEX_RE, Context, now_iso

MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_FILES = 50
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
TYPES = {"EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "GAID_SHA256", "IDFA_MD5", "GAID_MD5", "MAID_SHA256",
         "MAID_MD5", "FIRST_SHA256", "FIRST_MD5", "MULTIPLE_TYPES"}


def envelope(code: int, message: str, data: dict | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data or {}})


def throttled_response() -> JSONResponse:
    return envelope(40100, "Request too frequent. Please retry later.")


def server_error_response() -> JSONResponse:
    return JSONResponse({"code": 50000, "message": "Injected fault: system error", "request_id": uuid.uuid4().hex,
                         "data": {}}, status_code=503)


def looks_hashed(value: str, calculate_type: str) -> bool:
    if calculate_type.endswith("MD5"):
        return bool(MD5_RE.match(value))
    if calculate_type == "MULTIPLE_TYPES":
        return all(SHA256_HEX_RE.match(v) or MD5_RE.match(v) for v in value.split(",") if v)
    return bool(SHA256_HEX_RE.match(value))


async def upload(request: Request, ctx: Context) -> Response:
    form = await request.form()
    upload_file, calculate_type = form.get("file"), str(form.get("calculate_type", ""))
    if not form.get("advertiser_id") or upload_file is None or isinstance(upload_file, str):
        return envelope(40001, "advertiser_id and file are required (multipart/form-data).")
    if calculate_type not in TYPES:
        return envelope(40001, f"calculate_type must be one of {', '.join(sorted(TYPES))}.")
    if not (upload_file.filename or "").lower().endswith((".csv", ".txt")):
        return envelope(40001, "Only .csv and .txt files are accepted.")
    content = await upload_file.read()
    if len(content) > MAX_FILE_BYTES:
        return envelope(40001, "The file exceeds 100 MB.")
    if hashlib.md5(content).hexdigest() != str(form.get("file_signature", "")).lower():  # noqa: S324 - TikTok's check
        return envelope(40001, "file_signature does not match the MD5 of the file.")
    lines = [ln.strip().lower() for ln in content.decode("utf-8", "replace").splitlines() if ln.strip()]
    if lines and re.fullmatch(r"[a-z_, ]+", lines[0]) and not looks_hashed(lines[0], calculate_type):
        lines = lines[1:]  # a header line such as "email_sha256"
    if not lines:
        return envelope(40001, "The file holds no identifiers.")
    if any(not looks_hashed(v, calculate_type) for v in lines):
        return envelope(40062, "PII data is not hashed: every line must be a hashed identifier of calculate_type.")
    file_path = f"tiktok-sandbox/{uuid.uuid4().hex}.{upload_file.filename.rsplit('.', 1)[-1]}"
    with ctx.store.tx() as db:
        members.upsert(db, "tiktok_file", file_path, [(v, {}) for v in dict.fromkeys(lines)])
    return envelope(0, "OK", {"file_path": file_path, "size": len(content)})


async def json_params(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def file_keys(db, paths: list) -> list[str] | None:
    out: list[str] = []
    for p in paths:
        keys = members.keys(db, "tiktok_file", str(p))
        if not keys and db.execute("select 1 from members where platform='tiktok_file' and audience=? limit 1",
                                   (str(p),)).fetchone() is None:
            return None
        out += keys
    return out


async def create(request: Request, ctx: Context) -> Response:
    body = await json_params(request)
    paths, name = body.get("file_paths"), body.get("custom_audience_name")
    if not body.get("advertiser_id") or not name or not isinstance(paths, list) or not paths:
        return envelope(40001, "advertiser_id, custom_audience_name and file_paths are required.")
    if len(paths) > MAX_FILES or not 1 <= int(body.get("retention_in_days", 365)) <= 365:
        return envelope(40061, f"At most {MAX_FILES} file_paths; retention_in_days 1-365.")
    audience_id = str(secrets.randbelow(10**10) + 10**10)
    with ctx.store.tx() as db:
        keys = file_keys(db, paths)
        if keys is None:
            return envelope(40001, "A file_path was not uploaded (or has expired).")
        members.ensure_audience(db, "tiktok", audience_id, {"custom_audience_id": audience_id, "name": name,
                                                            "calculate_type": body.get("calculate_type"),
                                                            "create_time": now_iso()})
        members.upsert(db, "tiktok", audience_id, [(k, {}) for k in keys])
    return envelope(0, "OK", {"custom_audience_id": audience_id})


async def update(request: Request, ctx: Context) -> Response:
    body = await json_params(request)
    audience_id, paths = str(body.get("custom_audience_id", "")), body.get("file_paths")
    action = body.get("action", "REPLACE")
    if action not in ("APPEND", "REMOVE", "REPLACE") or not isinstance(paths, list) or not paths:
        return envelope(40001, "custom_audience_id, file_paths and action (APPEND|REMOVE|REPLACE) are required.")
    minimum = int(ctx.options.get("tiktok_min_audience", 1000))
    with ctx.store.tx() as db:
        if audience_id not in members.audiences(db, "tiktok"):
            return envelope(40001, f"custom_audience_id {audience_id} does not exist.")
        keys = file_keys(db, paths)
        if keys is None:
            return envelope(40001, "A file_path was not uploaded (or has expired).")
        current = set(members.keys(db, "tiktok", audience_id))
        after = current | set(keys) if action == "APPEND" else (current - set(keys) if action == "REMOVE" else set(keys))
        if len(after) < minimum:
            return envelope(40001, f"The audience would have {len(after)} members after {action}; the minimum is "
                                   f"{minimum}.")
        members.clear(db, "tiktok", audience_id)
        members.upsert(db, "tiktok", audience_id, [(k, {}) for k in sorted(after)])
    return envelope(0, "OK", {"custom_audience_id": audience_id})


def guarded(handler, ctx: Context):
    async def wrapped(request: Request) -> Response:
        if request.headers.get("access-token") != ctx.token:
            return envelope(40105, "Access token is incorrect or has been revoked.")
        if not ctx.limiter.check("tiktok:api").allowed:
            return throttled_response()
        return await handler(request, ctx)
    return wrapped


def routes(ctx: Context) -> Mount:
    base = "/dmp/custom_audience"
    table = [(f"{base}/file/upload", upload), (f"{base}/create", create), (f"{base}/update", update)]
    return Mount("/tiktok/open_api/v1.3", routes=[Route(p + slash, guarded(h, ctx), methods=["POST"])
                                                  for p, h in table for slash in ("/", "")])


def summary(db) -> dict:
    return {"audiences": members.counts(db, "tiktok")}
