"""Braze users (https://rest.<instance>.braze.com; shared/destinations.md §6).

`POST /users/track` with `Authorization: Bearer <REST API key>` and at most 75 attribute objects per
request (the current limit for attributes, events and purchases combined [B5]). Each object names
the user by `external_id` = Lifeline's profile_id and carries email, phone, first/last name and the
payload's fields as custom attributes (`lifeline_<field>`). Braze answers `"message": "success"`
even when some objects fail, listing them in `errors[]` by array and index: those rows become
permanent per-row rejections, the rest are acknowledged. 5xx and connection errors are retried by
the session with jittered backoff; a 429 (Braze sends no Retry-After) waits until
`X-RateLimit-Reset`, and a response whose `X-RateLimit-Remaining` is 0 waits for the reset before
the next request.

Sync modes:
- `upsert` (ProfileClient): the attributes above; a payload field that is null is sent as `null`,
  which Braze documents as removing the attribute [B1], so a field that went from a value to null
  is cleared (every null field of a changed row is sent: Braze may count each as a data point). A
  field the row carried before and no longer carries at all (gone from the payload, or removed
  from the sync's `fields:` in syncs.yml) reaches this client as a null field too: the engine
  remembers each row's fields (syncs/sent_fields.py). Email, phone and names are never
  cleared: other sources (SDKs, forms) set them too. No user is removed;
- `add_remove` (MembershipClient): Braze has no lists, so membership is an array custom attribute,
  `lifeline_audiences`, changed with Braze's array operations `{"lifeline_audiences": {"add":
  ["<name>"]}}` / `{"remove": ["<name>"]}` (removals only touch existing users:
  `_update_existing_only`); a Braze segment filters on it. The name is the destination's
  `list_name`, else the sync's audience, else the sync name.
- no `mirror`: Braze has no API listing the users holding an attribute value.

Erasure (ForgetClient): `POST /users/delete`, one identifier type per request, at most 50 ids:
the external_ids (profile_ids), then the emails, then the phones. No raw PII is logged.
"""
from __future__ import annotations

import time
from typing import Iterator, Mapping

import requests

from syncs.config import Destination
from syncs.destinations.base import DestinationError, RowResult, payload_attributes
from syncs.http import ResetHeaderRetry, limiter, session

MAX_OBJECTS = 75          # [B5] objects per /users/track request
MAX_DELETE = 50           # [B3] ids per /users/delete request
TRACK_RATE = [(3_000, 3)]     # [B2] /users/track: 3,000 requests per 3 s
DELETE_RATE = [(20_000, 60)]  # [B3] /users/delete: 20,000 requests per minute
NO_LIMIT = [(100_000, 1)]     # only for a sandbox run without rate limits
AUDIENCES_ATTRIBUTE = "lifeline_audiences"
DELETE_KINDS = (("external_ids", "key"), ("email_addresses", "email"), ("phone_numbers", "phone"))


def attributes(row: dict) -> dict:
    """A user attributes object: identifier, standard fields and the payload as custom attributes
    (null payload fields as null: Braze removes them)."""
    attrs: dict = {"external_id": row["key"]}
    for field in ("email", "phone", "first_name", "last_name"):
        if row.get(field):
            attrs[field] = row[field]
    attrs.update({name: v for name, v in (payload_attributes(row, keep_nulls=True) or {}).items()
                  if name != AUDIENCES_ATTRIBUTE})
    return attrs


def chunks(rows: list[dict], size: int = MAX_OBJECTS) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


class BrazeUsers:
    """A ProfileClient (upsert), MembershipClient (add_remove) and ForgetClient."""

    upsert_batch_size = MAX_OBJECTS
    add_batch_size = MAX_OBJECTS
    remove_batch_size = MAX_OBJECTS
    forget_batch_size = MAX_DELETE
    calls_per_second = TRACK_RATE[0][0] / TRACK_RATE[0][1]
    calls_per_add_batch = 1

    def __init__(self, base_url: str, api_key: str, audience: str, *, key_env: str = "BRAZE_API_KEY",
                 rate_limits: bool = True, timeout_s: float = 60):
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self.key_env = key_env
        self.http, self.retries = session(retry_class=ResetHeaderRetry)
        self.http.headers["Authorization"] = f"Bearer {api_key}"
        self.rate = {"/users/track": limiter(TRACK_RATE if rate_limits else NO_LIMIT),
                     "/users/delete": limiter(DELETE_RATE if rate_limits else NO_LIMIT)}
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict) -> requests.Response:
        self.rate[path].try_acquire("braze")
        response = self.http.post(f"{self.base_url}{path}", json=body, timeout=self.timeout_s)
        if response.status_code in (401, 403):
            raise DestinationError(f"Braze refused the REST API key ({response.status_code}): check the variable "
                                   f"{self.key_env}")
        if response.status_code == 429:
            raise DestinationError(f"Braze {path} still answered 429 (rate limited) after {self.retries[0]} "
                                   "retries; nothing more was sent: rerun the sync later")
        if response.headers.get("X-RateLimit-Remaining") == "0":  # the window is used up: wait for its reset
            try:
                time.sleep(min(max(float(response.headers.get("X-RateLimit-Reset") or 0) - time.time(), 0), 120))
            except ValueError:
                pass
        return response

    def _track(self, rows: list[dict], objects: list[dict]) -> list[RowResult]:
        response = self._post("/users/track", {"attributes": objects})
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 300 or answer.get("message") != "success":
            raise DestinationError(f"Braze /users/track failed with {response.status_code}: "
                                   f"{str(answer.get('message') or response.text)[:200]}")
        failed = {e.get("index"): e for e in answer.get("errors") or [] if e.get("input_array") == "attributes"}
        return [RowResult(row["key"], False, code="invalid_object",
                          message=str(failed[i].get("type") or "rejected by Braze")[:300])
                if i in failed else RowResult(row["key"], True, destination_id=row["key"])
                for i, row in enumerate(rows)]

    # -- modes -------------------------------------------------------------------------------
    def upsert(self, rows: list[dict]) -> list[RowResult]:
        return [r for chunk in chunks(rows) for r in self._track(chunk, [attributes(x) for x in chunk])]

    def add(self, rows: list[dict]) -> list[RowResult]:
        member = {AUDIENCES_ATTRIBUTE: {"add": [self.audience]}}
        return [r for chunk in chunks(rows) for r in self._track(chunk, [attributes(x) | member for x in chunk])]

    def remove(self, rows: list[dict]) -> list[RowResult]:
        leave = {AUDIENCES_ATTRIBUTE: {"remove": [self.audience]}, "_update_existing_only": True}
        return [r for chunk in chunks(rows)
                for r in self._track(chunk, [{"external_id": x["key"]} | leave for x in chunk])]

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """Delete the users by external_id, then any user Braze holds under their email or phone."""
        for kind, field in DELETE_KINDS:
            values = sorted({r[field] for r in rows if r.get(field)})
            for start in range(0, len(values), MAX_DELETE):
                response = self._post("/users/delete", {kind: values[start:start + MAX_DELETE]})
                if response.status_code >= 300:
                    raise DestinationError(f"Braze /users/delete ({kind}) failed with {response.status_code}")
        return [RowResult(r["key"], True, destination_id=r.get("destination_id")) for r in rows]


def from_config(dest: Destination, audience: str, env: Mapping[str, str]) -> BrazeUsers:
    """The client a syncs.yml destination of type braze describes (REST key from dest.api_key_env)."""
    return BrazeUsers(dest.resolved_base_url(env), dest.api_key(env), dest.list_name or audience,
                      key_env=dest.api_key_env or "", rate_limits=dest.client_rate_limits, timeout_s=dest.timeout_s)
