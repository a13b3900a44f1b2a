"""Signed webhook receiver under `/webhook/{name}`.

POST any body with `X-Lifeline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by
the sandbox token (see signing.py). A missing, forged or stale (> `webhook_tolerance_s`, default
300 s) signature answers 401 and nothing is stored. Deliveries are listed at
`GET /_sandbox/webhook/{name}`.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from syncs.sandbox.common import Context, now_iso, read_body
from syncs.sandbox.signing import WEBHOOK_HEADER, verify_webhook

MAX_BYTES = 5 * 1024 * 1024


def throttled_response() -> JSONResponse:
    return JSONResponse({"error": "too many requests"}, status_code=429, headers={"Retry-After": "1"})


def server_error_response() -> JSONResponse:
    return JSONResponse({"error": "injected fault"}, status_code=503)


def routes(ctx: Context) -> Mount:
    async def receive(request: Request) -> Response:
        body = await read_body(request, MAX_BYTES)
        if body is None:
            return JSONResponse({"error": "body larger than 5 MB"}, status_code=413)
        reason = verify_webhook(request.headers.get(WEBHOOK_HEADER, ""), body, ctx.token, ctx.webhook_tolerance_s)
        if reason:
            return JSONResponse({"error": f"invalid signature: {reason}"}, status_code=401)
        with ctx.store.tx() as db:
            cur = db.execute("insert into webhook_deliveries (name, body, received) values (?,?,?)",
                             (request.path_params["name"], body.decode("utf-8", "replace"), now_iso()))
        return JSONResponse({"received": True, "id": cur.lastrowid})

    return Mount("/webhook", routes=[Route("/{name}", receive, methods=["POST"])])


def control_routes(ctx: Context) -> list[Route]:
    async def deliveries(request: Request) -> JSONResponse:
        with ctx.store.tx() as db:
            rows = db.execute("select id, body, received from webhook_deliveries where name = ? order by id",
                              (request.path_params["name"],)).fetchall()
        out = []
        for i, body, received in rows:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
            out.append({"id": i, "received": received, "body": parsed})
        return JSONResponse({"deliveries": out})
    return [Route("/webhook/{name}", deliveries, methods=["GET"])]


def summary(db) -> dict:
    return {"endpoints": {n: c for n, c in db.execute(
        "select name, count(*) from webhook_deliveries group by name order by name")}}
