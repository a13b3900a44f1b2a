"""Signed webhook destination: each batch of adds or removes is one HMAC-signed JSON POST.

Header `X-Lifeline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed by the secret
named by api_key_env. A 2xx acknowledges every row of the batch; transient errors are retried
by the session; 401/403 stops the run (wrong secret) with nothing marked.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

from syncs.destinations.base import DestinationError, RowResult
from syncs.http import limiter, session

SIGNATURE_HEADER = "X-Lifeline-Signature"
BATCH_ROWS = 500          # our own choice: keeps bodies far below the receiver's 5 MB limit
RATE = [(10, 1)]          # be gentle with a customer's endpoint
FIELDS = ("email", "phone", "first_name", "last_name", "payload")
FORGET_FIELDS = ("email", "phone")  # what a receiver needs to find the person to erase


def signature(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookClient:
    add_batch_size = BATCH_ROWS
    remove_batch_size = BATCH_ROWS
    calls_per_second = float(RATE[0][0])
    calls_per_add_batch = 1
    forget_batch_size = BATCH_ROWS

    def __init__(self, url: str, secret: str, sync_name: str, timeout_s: float = 60):
        self.url = url
        self.timeout_s = timeout_s
        self.secret = secret
        self.sync_name = sync_name
        self.http, self.retries = session()
        self.rate = limiter(RATE)

    def _post(self, op: str, rows: list[dict]) -> list[RowResult]:
        body = json.dumps({"sync": self.sync_name, "op": op,
                           "rows": [{"key": r["key"], **{f: r.get(f) for f in {"add": FIELDS, "forget": FORGET_FIELDS}
                                                          .get(op, ())}}
                                    for r in rows]}, separators=(",", ":")).encode()
        self.rate.try_acquire("webhook")
        response = self.http.post(self.url, data=body, timeout=self.timeout_s, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: signature(body, self.secret, int(time.time()))})
        if response.status_code in (401, 403):
            raise DestinationError(f"the webhook refused the signature ({response.status_code}): "
                                   "check the secret in the variable named by api_key_env")
        if response.status_code >= 300:
            raise DestinationError(f"the webhook answered {response.status_code} for a batch of {len(rows)} rows")
        return [RowResult(r["key"], True) for r in rows]

    def add(self, rows: list[dict]) -> list[RowResult]:
        return self._post("add", rows)

    def remove(self, rows: list[dict]) -> list[RowResult]:
        return self._post("remove", rows)

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """GDPR deletion: a signed `forget` event (op "forget", rows of key, email, phone)."""
        return self._post("forget", rows)
