"""TikTok customer-file audience membership (https://business-api.tiktok.com/open_api/v1.3;
shared/destinations.md §7). Header `Access-Token: <token>`; every answer is an envelope
`{code, message, request_id, data}`, mostly with HTTP 200.

Each batch is a file of SHA-256 hex email hashes, one per line (calculate_type EMAIL_SHA256,
email trimmed and lowercased: normalize.tiktok_email), uploaded with
`POST /dmp/custom_audience/file/upload/` (multipart: advertiser_id, file, file_signature = MD5 of
the file, calculate_type), then applied with `POST /dmp/custom_audience/update/`
`{advertiser_id, custom_audience_id, file_paths: [path], action: APPEND | REMOVE}`: two calls per
batch, at most 50,000 lines per file (~3.3 MB; TikTok publishes no line limit, its SDK caps files
at 50 per audience). No raw email leaves the machine. The audience (audience_id) must exist: create
it in Ads Manager (or `/dmp/custom_audience/create/`) with calculate_type EMAIL_SHA256. Rows
without an email are rejected (code no_email): phone matching would need a second audience type.

TikTok refuses an update that would leave the audience below 1,000 members. That refusal stops the
run with a clear DestinationError (nothing of the batch is marked, so the next run retries): an
audience smaller than 1,000 cannot be synced to TikTok, and members cannot be removed below it.
Codes: 40100 (too frequent) is retried with backoff; 40102/40104/40105 (token) stop the run naming
the token variable; 20001 (partial success) is taken as success since TikTok names no failed
line; anything else stops the run with TikTok's code and message. HTTP 5xx by the session.

GDPR: TikTok has no per-person deletion call for customer files; `forget()` removes the person's
email hash from the audience (REMOVE), which the 1,000-member rule can refuse (then delete the
audience, or the person, by hand in TikTok Ads Manager).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping

import requests

from syncs.config import Destination
from syncs.destinations import normalize as norm
from syncs.destinations.base import DestinationError, RowResult
from syncs.destinations.hashed_audience import HashedAudience, Hasher, Identity, Throttled, encode, with_backoff
from syncs.http import limiter, session

API = "/open_api/v1.3/dmp/custom_audience"
MAX_LINES = 50_000
RATE = [(10, 1)]               # no published number; 10 requests/s (the sandbox's choice, too)
NO_LIMIT = [(100_000, 1)]
CALCULATE_TYPE = "EMAIL_SHA256"
MIN_AUDIENCE = 1_000
OK_CODES = {0, 20001}
THROTTLED = 40100
TOKEN_CODES = {40102, 40104, 40105}
CONTACT: list[Hasher] = [("email", "EMAIL", lambda v: norm.sha256_hex(norm.tiktok_email(v)))]


def customer_file(hashes: list[str]) -> bytes:
    return ("\n".join(hashes) + "\n").encode("ascii")


class TikTokAudience(HashedAudience):
    platform = "TikTok (an EMAIL_SHA256 audience)"
    contact = CONTACT
    add_batch_size = MAX_LINES
    remove_batch_size = MAX_LINES
    calls_per_second = float(RATE[0][0])
    calls_per_add_batch = 2   # upload the file, apply it
    forget_batch_size = MAX_LINES // 2

    def __init__(self, base_url: str, access_token: str, advertiser_id: str, audience_id: str, key_env: str,
                 rate_limits: bool = True, backoff_s: float = 0.5, timeout_s: float = 60):
        self.base_url = f"{base_url.rstrip('/')}{API}"
        self.timeout_s = timeout_s
        self.advertiser_id = advertiser_id
        self.audience_id = audience_id
        self.key_env = key_env
        self.http, self.retries = session()
        self.http.headers["Access-Token"] = access_token
        self.rate = limiter(RATE if rate_limits else NO_LIMIT)
        self.backoff_s = backoff_s

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, what: str, **kwargs) -> tuple[int, str, dict]:
        """POST to `{API}/{what}/`, retried while TikTok answers 40100; (code, message, data)."""
        def call() -> tuple[int, str, dict]:
            self.rate.try_acquire("tiktok")
            response = self.http.post(f"{self.base_url}/{what}/", timeout=self.timeout_s, **kwargs)
            if response.status_code >= 500:
                raise DestinationError(f"TikTok {what} kept failing with HTTP {response.status_code} after "
                                       f"{self.retries[0]} retries; nothing more was sent: rerun the sync later")
            body = _envelope(response)
            code, message = body.get("code"), str(body.get("message", ""))[:300]
            if code == THROTTLED:
                raise Throttled(f"code {code}: {message}")
            if code in TOKEN_CODES:
                raise DestinationError(f"TikTok refused the access token (code {code}: {message}): check "
                                       f"{self.key_env}")
            if not isinstance(code, int):
                raise DestinationError(f"TikTok {what} answered HTTP {response.status_code} without an envelope")
            return code, message, body.get("data") or {}

        return with_backoff(call, self.retries, "TikTok", initial_s=self.backoff_s)

    def _apply(self, action: str, hashes: list[str]) -> None:
        """Upload one customer file and APPEND or REMOVE it; raises unless TikTok applied it."""
        assert len(hashes) <= MAX_LINES
        content = customer_file(hashes)
        code, message, data = self._call(
            "file/upload", data={"advertiser_id": self.advertiser_id, "calculate_type": CALCULATE_TYPE,
                                 "file_signature": hashlib.md5(content).hexdigest()},
            files={"file": ("lifeline.csv", content, "text/csv")})
        if code not in OK_CODES or not data.get("file_path"):
            raise DestinationError(f"TikTok refused the customer file (code {code}: {message}); check advertiser_id")
        code, message, _ = self._call("update", json={"advertiser_id": self.advertiser_id,
                                                      "custom_audience_id": self.audience_id,
                                                      "file_paths": [data["file_path"]], "action": action})
        if code in OK_CODES:
            return
        rule = ""
        if "minimum" in message.lower() or str(MIN_AUDIENCE) in message.replace(",", ""):
            rule = (f" TikTok keeps a customer-file audience at {MIN_AUDIENCE:,} members or more after every update:"
                    f" this {action} would leave it smaller. Grow the audience past {MIN_AUDIENCE:,} first, or"
                    f" remove it in TikTok Ads Manager.")
        raise DestinationError(f"TikTok refused to {action} {len(hashes)} members of audience {self.audience_id} "
                               f"(code {code}: {message}).{rule} Nothing of this batch was marked; a rerun retries it.")

    def _put(self, pairs: list[tuple[dict, Identity]]) -> list[RowResult]:
        self._drop([ids for _, ids in pairs], action="APPEND")
        return [RowResult(row["key"], True, destination_id=encode(ids)) for row, ids in pairs]

    def _drop(self, identities: list[Identity], action: str = "REMOVE") -> None:
        hashes = list(dict.fromkeys(ids["EMAIL"] for ids in identities if "EMAIL" in ids))
        for start in range(0, len(hashes), MAX_LINES):
            self._apply(action, hashes[start:start + MAX_LINES])


def from_config(dest: Destination, env: Mapping[str, str]) -> TikTokAudience:
    """The client a syncs.yml destination of type tiktok describes (token from dest.api_key_env)."""
    return TikTokAudience(dest.resolved_base_url(env), dest.api_key(env), dest.advertiser_id or "",
                          dest.audience_id or "", key_env=dest.api_key_env or "", rate_limits=dest.client_rate_limits,
                          timeout_s=dest.timeout_s)


def _envelope(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DestinationError(f"TikTok answered HTTP {response.status_code} with no JSON envelope")
    return body
