"""The feedback receiver: a Starlette app for Twilio status callbacks and signed webhook posts.

- `POST /twilio/status`: Twilio's form-encoded (or JSON with `bodySHA256`) status callback, signed
  with X-Twilio-Signature by the auth token. The callback URL's query carries the labels the
  project sent (`campaign`, `external_id`).
- `POST /webhook`: a JSON body of message_events objects signed with X-Lifeline-Signature by the
  webhook secret.

A missing or wrong signature answers 403 and writes nothing; a body that cannot be mapped answers
400 naming the field. Accepted events are appended once to raw.message_events (a retried callback
answers 200 with `written: 0`). Twilio signs the public URL it called: behind a proxy, pass
`public_url` (e.g. https://hooks.example.com) so the signed URL can be rebuilt.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from syncs.feedback.mapping import FeedbackMappingError, twilio_status_row, webhook_rows
from syncs.feedback.signatures import TWILIO_HEADER, WEBHOOK_HEADER, validate_twilio, verify_webhook
from syncs.feedback.writer import MessageEventWriter

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class ReceiverSecrets:
    twilio_auth_token: str | None
    webhook_secret: str | None
    webhook_tolerance_s: int = 300


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _forbidden(reason: str) -> JSONResponse:
    log.warning("feedback: rejected a request: %s", reason)
    return JSONResponse({"error": f"forbidden: {reason}"}, status_code=403)


def _signed_url(request: Request, public_url: str | None) -> str:
    if not public_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return public_url.rstrip("/") + request.url.path + query


def create_receiver(writer: MessageEventWriter, secrets: ReceiverSecrets, public_url: str | None = None) -> Starlette:
    async def read(request: Request) -> bytes | None:
        body = await request.body()
        return body if len(body) <= MAX_BODY else None

    async def write(rows: list[dict]) -> JSONResponse:
        written = await run_in_threadpool(writer.append, rows)
        log.info("feedback: %d event(s) received, %d new", len(rows), written)
        return JSONResponse({"received": len(rows), "written": written})

    async def twilio_status(request: Request) -> JSONResponse:
        if not secrets.twilio_auth_token:
            return _forbidden("no Twilio auth token configured; set the variable named by "
                              "feedback.twilio_auth_token_env")
        body = await read(request)
        if body is None:
            return JSONResponse({"error": "body larger than 1 MB"}, status_code=413)
        text = body.decode("utf-8", "replace")
        is_json = "bodySHA256" in request.query_params
        params: list[tuple[str, str]] | str = text if is_json else parse_qsl(text, keep_blank_values=True)
        url = _signed_url(request, public_url)
        if not validate_twilio(url, params, request.headers.get(TWILIO_HEADER, ""), secrets.twilio_auth_token):
            return _forbidden(f"{TWILIO_HEADER} missing or not valid for this URL and body")
        try:
            fields = json.loads(text) if is_json else dict(params)
            if not isinstance(fields, dict):
                raise FeedbackMappingError("JSON callback body must be an object")
            labels = {k: v for k, v in request.query_params.items() if k != "bodySHA256"}
            mapped = twilio_status_row({k: str(v) for k, v in fields.items() if v is not None}, labels, _now())
        except (FeedbackMappingError, ValueError) as exc:
            return JSONResponse({"error": f"cannot map the callback: {exc}"}, status_code=400)
        return await write([mapped] if mapped else [])

    async def webhook(request: Request) -> JSONResponse:
        if not secrets.webhook_secret:
            return _forbidden("no webhook secret configured; set the variable named by feedback.webhook_secret_env")
        body = await read(request)
        if body is None:
            return JSONResponse({"error": "body larger than 1 MB"}, status_code=413)
        reason = verify_webhook(request.headers.get(WEBHOOK_HEADER, ""), body, secrets.webhook_secret,
                                secrets.webhook_tolerance_s)
        if reason:
            return _forbidden(f"{WEBHOOK_HEADER}: {reason}")
        try:
            rows = webhook_rows(json.loads(body))
        except (FeedbackMappingError, ValueError) as exc:
            return JSONResponse({"error": f"cannot map the webhook body: {exc}"}, status_code=400)
        return await write(rows)

    return Starlette(routes=[Route("/twilio/status", twilio_status, methods=["POST"]),
                             Route("/webhook", webhook, methods=["POST"])])
