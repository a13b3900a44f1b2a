"""Mailchimp audience membership (https://<dc>.api.mailchimp.com/3.0; shared/destinations.md §5).

Adding: `POST /3.0/lists/{list_id}` batch subscribe, up to 500 members, `update_existing: true`,
`skip_duplicate_check=true`. The answer is 200 even when members fail: each entry of `errors[]`
becomes a permanent per-row rejection; members in new_members/updated_members are acknowledged.
Status `subscribed`: audience_members for the email channel only hold people with email consent.
Removing: `DELETE /3.0/lists/{list_id}/members/{subscriber_hash}` archives the member (consent
untouched; 404 = already gone). Auth: HTTP Basic with any user name and the API key.
Reading the audience (mirror mode): `GET /3.0/lists/{list_id}/members?status=subscribed`, pages of
1,000 by `count`/`offset` until `total_items`; only subscribed members count as present (an archived,
unsubscribed or cleaned contact is not someone Lifeline would have put there).
Mailchimp allows 10 concurrent connections per user and sends no rate-limit headers; the client
is sequential and the session retries 429/5xx with backoff.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

from syncs.destinations.base import DestinationError, RowResult
from syncs.http import limiter, session

BATCH_MEMBERS = 500            # [MC2] batch subscribe limit
MEMBERS_PAGE = 1_000           # [MC1] count maximum of GET /lists/{id}/members
RATE = [(10, 1)]               # sequential calls; 10/s keeps far under the 10-connection cap [MC5]


def subscriber_hash(email: str) -> str:
    """MD5 hex of the lower-cased email: Mailchimp's member id [MC1]."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 - Mailchimp's identifier


class MailchimpList:
    add_batch_size = BATCH_MEMBERS
    remove_batch_size = BATCH_MEMBERS
    calls_per_second = float(RATE[0][0])
    calls_per_add_batch = 1
    forget_batch_size = BATCH_MEMBERS

    def __init__(self, base_url: str, api_key: str, list_id: str, timeout_s: float = 60):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.list_id = list_id
        self.http, self.retries = session()
        self.http.auth = ("lifeline", api_key)
        self.rate = limiter(RATE)

    def _request(self, method: str, path: str, **kwargs):
        self.rate.try_acquire("mailchimp")
        response = self.http.request(method, f"{self.base_url}/3.0{path}", timeout=self.timeout_s, **kwargs)
        if response.status_code in (401, 403):
            raise DestinationError(f"Mailchimp refused the API key ({response.status_code}): check the variable "
                                   "named by api_key_env")
        return response

    def add(self, rows: list[dict]) -> list[RowResult]:
        results: list[RowResult] = []
        by_email: dict[str, dict] = {}
        for row in rows:
            if row.get("email"):
                by_email[row["email"].strip().lower()] = row
            else:
                results.append(RowResult(row["key"], False, code="no_email", message="the row has no email"))
        if not by_email:
            return results
        body = {"members": [{"email_address": email, "status": "subscribed",
                             "merge_fields": {k: v for k, v in (("FNAME", row.get("first_name")),
                                                                ("LNAME", row.get("last_name"))) if v}}
                            for email, row in by_email.items()],
                "update_existing": True}
        response = self._request("POST", f"/lists/{self.list_id}", params={"skip_duplicate_check": "true"},
                                 json=body)
        if response.status_code >= 300:
            raise DestinationError(f"Mailchimp batch subscribe failed with {response.status_code}: "
                                   f"{response.text[:200]}")
        answer = response.json()
        done = {m["email_address"].lower(): m.get("id") for m in
                answer.get("new_members", []) + answer.get("updated_members", [])}
        failed = {e.get("email_address", "").lower(): e for e in answer.get("errors", [])}
        for email, row in by_email.items():
            if email in done:
                results.append(RowResult(row["key"], True, destination_id=done[email] or subscriber_hash(email)))
            elif email in failed:
                err = failed[email]
                results.append(RowResult(row["key"], False, code=err.get("error_code") or "ERROR_GENERIC",
                                         message=f"{err.get('field') or 'member'}: rejected by Mailchimp"))
            else:
                results.append(RowResult(row["key"], False, code="not_acknowledged"))
        return results

    def remove(self, rows: list[dict]) -> list[RowResult]:
        results = []
        for row in rows:
            member = row.get("destination_id")
            if member:
                response = self._request("DELETE", f"/lists/{self.list_id}/members/{member}")
                if response.status_code >= 300 and response.status_code != 404:
                    raise DestinationError(f"Mailchimp archive failed with {response.status_code}")
            results.append(RowResult(row["key"], True, destination_id=member))
        return results

    def members(self) -> Iterator[dict]:
        """The audience's subscribed members, 1,000 a page: {"destination_id", "key": None, "email"}."""
        offset = 0
        while True:
            response = self._request("GET", f"/lists/{self.list_id}/members",
                                     params={"status": "subscribed", "count": MEMBERS_PAGE, "offset": offset,
                                             "fields": "members.id,members.email_address,total_items"})
            if response.status_code >= 300:
                raise DestinationError(f"Mailchimp reading the audience's members failed with {response.status_code}")
            body = response.json()
            page = body.get("members") or []
            for member in page:
                yield {"destination_id": member.get("id") or subscriber_hash(member["email_address"]), "key": None,
                       "email": member.get("email_address")}
            offset += MEMBERS_PAGE
            if not page or offset >= int(body.get("total_items") or 0):
                return

    def forget(self, rows: list[dict]) -> list[RowResult]:
        """GDPR deletion: `POST /lists/{id}/members/{subscriber_hash}/actions/delete-permanent` for each
        email (and stored member id); 404 means Mailchimp does not hold them, which is the goal."""
        results = []
        for row in rows:
            members = {m for m in (subscriber_hash(row["email"]) if row.get("email") else None,
                                   row.get("destination_id")) if m}
            for member in sorted(members):
                response = self._request("POST", f"/lists/{self.list_id}/members/{member}/actions/delete-permanent")
                if response.status_code >= 300 and response.status_code != 404:
                    raise DestinationError(f"Mailchimp permanent delete failed with {response.status_code}")
            results.append(RowResult(row["key"], True, destination_id=row.get("destination_id")))
        return results
