"""Request signatures: Lifeline's webhook HMAC and Twilio's X-Twilio-Signature (sign + verify).

Webhook: header `X-Lifeline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
keyed by the shared token. Twilio: base64 HMAC-SHA1, key = auth token, of the full URL followed by
each POST parameter name+value sorted by name (twilio-python request_validator.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

WEBHOOK_HEADER = "X-Lifeline-Signature"


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_webhook(header: str, body: bytes, secret: str, tolerance_s: int = 300,
                   now: float | None = None) -> str | None:
    """None when valid, else the reason it is not."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return f"malformed {WEBHOOK_HEADER} header; expected t=<unix>,v1=<hex>"
    if abs((time.time() if now is None else now) - int(parts["t"])) > tolerance_s:
        return f"signature timestamp is more than {tolerance_s}s from now (replayed or clock skew)"
    expected = sign_webhook(body, secret, int(parts["t"])).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        return "signature does not match the body"
    return None


def twilio_signature(url: str, params: Mapping[str, str], token: str) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def verify_twilio(signature: str, url: str, params: Mapping[str, str], token: str) -> bool:
    return hmac.compare_digest(twilio_signature(url, params, token), signature or "")
