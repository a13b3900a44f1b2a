"""Request verification for the feedback receiver.

Twilio: exactly twilio-python's `RequestValidator.validate` — base64 HMAC-SHA1 (key = auth token)
of the full URL followed by each POST parameter name+value (names sorted, each name's distinct
values sorted); the URL is tried both with and without its default port; a JSON body is instead
covered by the URL's `bodySHA256` query parameter (hex SHA-256 of the body) and signed with no
parameters. Every comparison is constant-time (hmac.compare_digest).

Lifeline webhooks use the scheme of the signed webhook destination (X-Lifeline-Signature), whose
verifier lives in syncs.sandbox.signing and is reused here.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import ParseResult, parse_qs, urlparse

from syncs.sandbox.signing import WEBHOOK_HEADER, verify_webhook

TWILIO_HEADER = "X-Twilio-Signature"
__all__ = ["TWILIO_HEADER", "WEBHOOK_HEADER", "twilio_signature", "validate_twilio", "verify_webhook"]


def twilio_signature(url: str, params: Iterable[tuple[str, str]], token: str) -> str:
    """Twilio's signature of URL + params (pairs, so repeated names keep every value)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    payload = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _with_port(uri: ParseResult) -> str:
    if uri.port:
        return uri.geturl()
    return uri._replace(netloc=f"{uri.netloc}:{443 if uri.scheme == 'https' else 80}").geturl()


def _without_port(uri: ParseResult) -> str:
    if not uri.port:
        return uri.geturl()
    return uri._replace(netloc=uri.netloc.rsplit(":", 1)[0]).geturl()


def validate_twilio(url: str, params: Iterable[tuple[str, str]] | str, signature: str, token: str) -> bool:
    """True when `signature` is Twilio's for this request. `params` is the form's (name, value) pairs,
    or the raw body text of a JSON callback (then the URL must carry bodySHA256)."""
    if not signature or not token:
        return False
    uri = urlparse(url)
    pairs: list[tuple[str, str]]
    body_ok = True
    if isinstance(params, str):
        claimed = parse_qs(uri.query).get("bodySHA256")
        body_ok = bool(claimed) and hmac.compare_digest(hashlib.sha256(params.encode()).hexdigest(), claimed[0])
        pairs = []
    else:
        pairs = list(params)
    matches = [hmac.compare_digest(twilio_signature(u, pairs, token), signature)
               for u in (_without_port(uri), _with_port(uri))]
    return body_ok and any(matches)
