"""Meta Custom Audience membership (https://graph.facebook.com/v25.0; shared/destinations.md §2).

Adding: `POST /{audience_id}/users`, removing: `DELETE /{audience_id}/users`, at most 10,000 rows
per call (and a safety cap of MAX_PAYLOAD_BYTES form-encoded, which 10,000 four-key rows stay under). Form-encoded `access_token`,
`payload` and `session` (JSON with sorted keys and compact separators, as the official SDK sends
them). The payload uses the multi-key schema `["EMAIL", "PHONE", "FN", "LN"]`: each value is the
SHA-256 hex of the value normalised as Meta's table says (normalize.meta_*); a missing value is
"". No raw email, phone or name leaves the machine. A row without a valid email or phone is
rejected before sending (FN/LN alone match nobody); an invalid name is left out. DELETE carries
its parameters in a form body, not the query string: thousands of hashed rows do not fit in a URL.

Answers: `num_received` must equal the rows sent (else the batch is not acknowledged and is
retried next run); rows named in `invalid_entry_samples` (keyed by their first value, the EMAIL
hash) become rejections with code `meta_invalid_entry`. Meta reports only samples, so invalid rows
beyond the samples cannot be told apart and are acknowledged. Throttling (HTTP 400 with code
4/17/32/613/80003, or any error marked `is_transient`) is retried with backoff, waiting at least
the `estimated_time_to_regain_access` of `X-Business-Use-Case-Usage`; HTTP 5xx by the session.
Token errors (code 190/102) stop the run naming the variable that holds the token.

App secret proof: when the destination names `app_secret_env` (e.g. META_APP_SECRET), every call
also carries `appsecret_proof` = HMAC-SHA256 (hex) of the access token keyed with the app secret, as
the official SDK sends it [M1]. An app with "Require App Secret" refuses calls without it, or with a
proof from another secret (HTTP 400, OAuthException code 100, "Invalid appsecret_proof provided in
the API argument"): that stops the run (not retried) naming the variable to fix.

GDPR: Meta has no per-person deletion call for custom audiences; `forget()` removes the person
from the audience (their stored hashed row, plus their email and phone hashes on their own, which
Meta matches against any member). Anything else Meta holds about the person is outside this API.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from urllib.parse import quote_plus

import requests

from syncs.config import Destination
from syncs.destinations import normalize as norm
from syncs.destinations.base import DestinationError, RowResult
from syncs.destinations.hashed_audience import HashedAudience, Hasher, Identity, Throttled, encode, with_backoff
from syncs.http import limiter, session

API_VERSION = "v25.0"          # [M1] apiconfig.py
SCHEMA = ["EMAIL", "PHONE", "FN", "LN"]
MAX_ROWS = 10_000              # [M2] max 10,000 users per call
# Meta documents no byte limit; 10,000 four-key rows are ~3 MB form-encoded. A call is also kept
# under this many bytes, so unusually long values split a batch rather than make one huge request.
MAX_PAYLOAD_BYTES = 8_000_000
RATE = [(5_000, 3_600)]        # [M6] Custom Audience BUC, Standard tier base (5000 + 40 x audiences per hour)
NO_LIMIT = [(100_000, 1)]
THROTTLE_CODES = {4, 17, 32, 613, 80003}  # app, user, page, ad-account and custom-audience rate limits [M5][M6]
AUTH_CODES = {102, 190}
PERMISSION_CODES = {10, 200, 294}


CONTACT: list[Hasher] = [("email", "EMAIL", lambda v: norm.sha256_hex(norm.meta_email(v))),
                         ("phone", "PHONE", lambda v: norm.sha256_hex(norm.meta_phone(v)))]


def row_values(identity: Identity) -> list[str]:
    return [identity.get(key, "") for key in SCHEMA]


def _compact(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class MetaAudience(HashedAudience):
    platform = "Meta"
    contact = CONTACT
    add_batch_size = MAX_ROWS
    remove_batch_size = MAX_ROWS
    calls_per_second = RATE[0][0] / RATE[0][1]
    calls_per_add_batch = 1
    forget_batch_size = MAX_ROWS // 3  # a forgotten row can become three rows (stored, email, phone)

    def __init__(self, base_url: str, access_token: str, audience_id: str, key_env: str,
                 rate_limits: bool = True, backoff_s: float = 0.5, timeout_s: float = 60,
                 app_secret: str | None = None, app_secret_env: str = ""):
        self.url = f"{base_url.rstrip('/')}/{API_VERSION}/{audience_id}/users"
        self.timeout_s = timeout_s
        self.audience_id = audience_id
        self.key_env = key_env
        self.auth = {"access_token": access_token}
        if app_secret:
            self.auth["appsecret_proof"] = appsecret_proof(access_token, app_secret)
        self.app_secret_env = app_secret_env
        self.http, self.retries = session()
        self.rate = limiter(RATE if rate_limits else NO_LIMIT)
        self.backoff_s = backoff_s

    def identify(self, row: dict) -> Identity:
        """The row's hashed multi-key identifiers; Rejected (code, field) when it cannot be matched."""
        ids = super().identify(row)  # FN/LN alone match nobody: an email or a phone is required
        for field, key in (("first_name", "FN"), ("last_name", "LN")):
            try:
                ids[key] = norm.sha256_hex(norm.meta_name(row.get(field)))
            except ValueError:
                continue  # names only add to a match; a missing or letterless name is left out
        return ids

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, method: str, identities: list[Identity]) -> dict:
        """One call of at most MAX_ROWS rows, retried while Meta throttles; its JSON answer."""
        assert len(identities) <= MAX_ROWS
        data = {**self.auth,
                "payload": _compact({"schema": SCHEMA, "is_raw": True, "data": [row_values(i) for i in identities]}),
                "session": _compact({"session_id": secrets.randbelow(2**53) + 1, "batch_seq": 1,
                                     "last_batch_flag": True, "estimated_num_total": len(identities)})}

        def call() -> dict:
            self.rate.try_acquire("meta")
            return self._answer(method, self.http.request(method, self.url, data=data, timeout=self.timeout_s))

        return with_backoff(call, self.retries, "Meta", initial_s=self.backoff_s)

    def _answer(self, method: str, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if response.ok and not error:
            return body
        if not isinstance(error, dict):
            raise DestinationError(f"Meta {method} /{self.audience_id}/users failed with HTTP {response.status_code}")
        code, subcode = error.get("code"), error.get("error_subcode")
        detail = f"code {code}" + (f"/{subcode}" if subcode else "") + f": {str(error.get('message'))[:300]}"
        if code in AUTH_CODES:
            raise DestinationError(f"Meta refused the access token ({detail}): check {self.key_env} (a system-user "
                                   "token with ads_management on the ad account)")
        if code == 100 and "appsecret_proof" in str(error.get("message")):
            raise DestinationError(self._proof_advice(detail))
        if code in THROTTLE_CODES or error.get("is_transient"):
            raise Throttled(detail, wait_s=_regain_s(response))
        if code in PERMISSION_CODES:
            raise DestinationError(f"Meta denied access to custom audience {self.audience_id} ({detail}): give the "
                                   f"token's user access to the ad account, or check audience_id")
        if code == 100 and subcode == 33:
            raise DestinationError(f"Meta has no custom audience {self.audience_id} visible to this token ({detail}):"
                                   " check audience_id in syncs.yml")
        raise DestinationError(f"Meta refused {method} /{self.audience_id}/users ({detail})")

    def _proof_advice(self, detail: str) -> str:
        if "appsecret_proof" not in self.auth:
            return (f"Meta requires appsecret_proof for this app ({detail}): add app_secret_env: META_APP_SECRET to "
                    f"the destination in syncs.yml and export META_APP_SECRET with the app secret (App settings > "
                    f"Basic) of the app that issued the token; nothing was sent")
        return (f"Meta refused the appsecret_proof ({detail}): {self.app_secret_env} does not hold the app secret of "
                f"the app that issued the token in {self.key_env}; export the right app secret (App settings > "
                f"Basic); nothing was sent")

    def _put(self, pairs: list[tuple[dict, Identity]]) -> list[RowResult]:
        results: list[RowResult] = []
        start = 0
        for chunk in calls([ids for _, ids in pairs]):
            sent = pairs[start:start + len(chunk)]
            results += _acknowledge(sent, self._send("POST", chunk))
            start += len(chunk)
        return results

    def _drop(self, identities: list[Identity]) -> None:
        for chunk in calls(identities):
            self._send("DELETE", chunk)


def from_config(dest: Destination, env: Mapping[str, str]) -> MetaAudience:
    """The client a syncs.yml destination of type meta describes (token from dest.api_key_env, app
    secret from dest.app_secret_env when named)."""
    app_secret = dest.secret(env, dest.app_secret_env, "app secret") if dest.app_secret_env else None
    return MetaAudience(dest.resolved_base_url(env), dest.api_key(env), dest.audience_id or "",
                        key_env=dest.api_key_env or "", rate_limits=dest.client_rate_limits, timeout_s=dest.timeout_s,
                        app_secret=app_secret, app_secret_env=dest.app_secret_env or "")


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """HMAC-SHA256 (hex) of the access token keyed with the app secret, as the SDK computes it [M1]."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def calls(identities: list[Identity]) -> list[list[Identity]]:
    """Split rows into calls of at most MAX_ROWS rows and MAX_PAYLOAD_BYTES form-encoded bytes."""
    out: list[list[Identity]] = [[]]
    size = 0
    for identity in identities:
        row_size = len(quote_plus(json.dumps(row_values(identity), separators=(",", ":")))) + 3
        if out[-1] and (len(out[-1]) >= MAX_ROWS or size + row_size > MAX_PAYLOAD_BYTES - 200):
            out.append([])
            size = 0
        out[-1].append(identity)
        size += row_size
    return [chunk for chunk in out if chunk]


def _acknowledge(sent: list[tuple[dict, Identity]], answer: dict) -> list[RowResult]:
    received = answer.get("num_received")
    if received is not None and int(received) != len(sent):
        return [RowResult(row["key"], False, code="not_acknowledged",
                          message=f"Meta received {received} of {len(sent)} rows") for row, _ in sent]
    samples = answer.get("invalid_entry_samples") or {}
    results = []
    for row, ids in sent:
        first = row_values(ids)[0][:80]
        if first and first in samples:
            results.append(RowResult(row["key"], False, code="meta_invalid_entry", message=str(samples[first])[:300]))
        else:
            results.append(RowResult(row["key"], True, destination_id=encode(ids)))
    return results


def _regain_s(response: requests.Response) -> float:
    """Seconds until Meta's business-use-case quota returns (its header counts minutes), 0 if unknown."""
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
        minutes = [float(entry.get("estimated_time_to_regain_access") or 0)
                   for entries in usage.values() for entry in entries]
    except (ValueError, AttributeError, TypeError):
        return 0.0
    return 60.0 * max(minutes, default=0.0)
