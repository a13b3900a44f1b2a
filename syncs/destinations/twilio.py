"""Twilio Programmable Messaging (https://api.twilio.com, API version 2010-04-01;
shared/destinations.md §4): one SMS per row, for trigger mode (a MessageClient).

Send: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP Basic
`AccountSid:AuthToken`, with To, From or MessagingServiceSid, Body (at most 1,600 characters: a
longer body is a per-row rejection without a request) and, when configured, StatusCallback (with
`campaign` and `external_id` query parameters, which the feedback receiver records).

Twilio has no idempotency key for message creation, so the client never blindly retries a send
whose outcome it does not know:
- 429 / 20429 ("never processed and always safe to retry"): retried with jittered exponential
  backoff (tenacity);
- 5xx, a dropped connection or a timeout: the message may or may not exist. Before trying again
  the client asks Twilio (`GET Messages.json?To=...`) for a message to that number with exactly
  this body, created since the attempt began; if one exists it is the row's message;
- 21610 (HTTP 400, the recipient replied STOP): a permanent per-row failure, code "21610";
- any other 4xx: a permanent per-row failure with Twilio's code; 401/403/404 stop the run
  (bad credentials or account).
When the retries run out the row is returned as "not_acknowledged": trigger mode keeps it pending
and asks Twilio about it again before any later send.

Looking a message up filters the list by To only, not by `DateSent>=`: DateSent filters on
date_sent, which Twilio fills when the carrier takes the message, so a message still queued,
accepted or scheduled would be missed and sent twice. Messages are compared by date_created
(minus a 2-minute clock margin), exact body and sender, newest first, paging until a whole page
is older than the window.

Erasure (`forget`): Twilio keeps a record of every message; GDPR deletion is `DELETE
/Messages/{sid}.json` (204; 404 = already gone) for every message of the account to the person's
numbers, found by paging `GET Messages.json?To=...`. Opt-outs (STOP) are Twilio's own compliance
record and are not deleted.

Phone numbers never appear in our logs or error messages (GETs are retried by tenacity rather than
urllib3, whose retry warnings print the URL, `To=` included). urllib3's own DEBUG lines do print
request URLs: do not run syncs with DEBUG logging on third-party loggers where logs leave the
machine.
"""
from __future__ import annotations

import email.utils
import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from syncs.config import Destination, MissingSecret
from syncs.destinations.base import DestinationError, RowResult
from syncs.http import TRANSIENT, limiter

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1_600  # [T1]
OPTED_OUT = "21610"
THROTTLED = "20429"
RATE = [(100, 1)]  # no documented REST cap [T3]; the sandbox models 100 requests/s
NO_LIMIT = [(100_000, 1)]
PAGE_SIZE = 1_000  # Twilio's maximum PageSize for list resources
CLOCK_MARGIN = timedelta(minutes=2)  # our clock vs Twilio's, when looking for a message we may have created


class _Transient(Exception):
    """A send to try again (throttled, or an unknown outcome already checked with Twilio)."""


def parse_twilio_date(value: str | None) -> datetime | None:
    """Twilio's RFC 2822 dates ("Wed, 18 Aug 2010 20:01:40 +0000"); ISO-8601 accepted too. Naive UTC."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _error(response: requests.Response) -> tuple[str, str]:
    """(code, message) of a Twilio error body: legacy {code, message} or RFC 9457 {code, detail}."""
    try:
        body = response.json()
    except ValueError:
        return str(response.status_code), response.text[:200]
    if not isinstance(body, dict):
        return str(response.status_code), str(body)[:200]
    code = body.get("code") or response.status_code
    return str(code), str(body.get("message") or body.get("detail") or body.get("title") or "")[:300]


class TwilioMessages:
    """A MessageClient. Rows carry key (the idempotency key), phone (E.164), body (rendered text),
    profile_id and campaign."""

    max_body_chars = MAX_BODY_CHARS
    send_batch_size = 25       # rows per state commit (one request each): at most this many to check after a crash
    calls_per_second = float(RATE[0][0])
    forget_batch_size = 50

    def __init__(self, base_url: str, account_sid: str, auth_token: str, *, from_number: str | None = None,
                 messaging_service_sid: str | None = None, status_callback: str | None = None,
                 rate_limits: bool = True, max_attempts: int = 8, backoff_s: float = 0.25, timeout_s: float = 30):
        if not from_number and not messaging_service_sid:
            raise DestinationError("Twilio needs from_number or messaging_service_sid in the destination config")
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.messages_url = f"{self.base_url}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        # No urllib3 retries: their warnings print the URL, and a message list's URL carries To=<phone>.
        # GETs are retried below on anything transient; POSTs only by the rules in the module docstring.
        self.http = requests.Session()
        self.http.auth = (account_sid, auth_token)
        self.retries = [0]
        self.rate = limiter(RATE if rate_limits else NO_LIMIT)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._acknowledged: set[str] = set()  # sids this client already tied to a row

    # -- sending -----------------------------------------------------------------------------
    def send(self, rows: list[dict]) -> list[RowResult]:
        results: list[RowResult] = []
        for i, row in enumerate(rows):
            result = self._send_one(row)
            results.append(result)
            if result.code == "not_acknowledged":  # Twilio keeps failing: stop, the rest stay pending
                results += [RowResult(r["key"], False, code="not_acknowledged", message="not attempted: " + result.message)
                            for r in rows[i + 1:]]
                break
        return results

    def _form(self, row: dict) -> dict[str, str]:
        form = {"To": row["phone"], "Body": row["body"]}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number or ""
        if self.status_callback:
            form["StatusCallback"] = _with_labels(self.status_callback, row.get("campaign"), row.get("profile_id"))
        return form

    def _send_one(self, row: dict) -> RowResult:
        key = row["key"]
        if len(row["body"]) > MAX_BODY_CHARS:
            return RowResult(key, False, code="body_too_long",
                             message=f"the message is {len(row['body'])} characters; Twilio takes at most {MAX_BODY_CHARS}")
        form = self._form(row)
        uncertain_since: datetime | None = None
        attempts = self._attempts()
        try:
            for attempt in attempts:
                with attempt:
                    if uncertain_since is not None:
                        earlier = [sid for sid in self.find(row["phone"], body_hash(row["body"]), uncertain_since)
                                   if sid not in self._acknowledged]
                        if earlier:
                            return self._ok(key, earlier[0])
                    started = _utcnow()
                    self.rate.try_acquire("twilio")
                    try:
                        response = self.http.post(self.messages_url, data=form, timeout=(5, self.timeout_s))
                    except requests.RequestException as exc:
                        uncertain_since = uncertain_since or started - CLOCK_MARGIN
                        raise _Transient(f"no answer from Twilio ({type(exc).__name__})") from None
                    if response.status_code >= 500:
                        uncertain_since = uncertain_since or started - CLOCK_MARGIN
                        raise _Transient(f"Twilio answered {response.status_code} (code {_error(response)[0]})")
                    return self._answer(key, response, row["phone"])
        except _Transient as exc:
            return RowResult(key, False, code="not_acknowledged",
                             message=f"Twilio did not accept the message after {self.max_attempts} attempts: {exc}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, key: str, response: requests.Response, phone: str) -> RowResult:
        if response.status_code == 201:
            return self._ok(key, response.json()["sid"])
        code, message = _error(response)
        if response.status_code == 429 or code == THROTTLED:
            raise _Transient(f"throttled ({code})")
        if response.status_code in (401, 403):
            raise DestinationError(f"Twilio refused the credentials ({response.status_code}, code {code}): check the "
                                   "account SID and auth token variables named in syncs.yml")
        if response.status_code == 404:
            raise DestinationError(f"Twilio has no account {self.account_sid} at {self.base_url} (404): check the "
                                   "account SID and base_url")
        return RowResult(key, False, code=code, message=message.replace(phone, "<To>"))  # Twilio may quote the number

    def _ok(self, key: str, sid: str) -> RowResult:
        self._acknowledged.add(sid)
        return RowResult(key, True, destination_id=sid)

    def _attempts(self) -> Retrying:
        """Up to max_attempts tries of a block raising _Transient, with jittered exponential backoff."""
        return Retrying(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.max_attempts),
                        wait=wait_random_exponential(multiplier=self.backoff_s, max=20), reraise=True,
                        before_sleep=lambda _: self._count_retry())

    def _count_retry(self) -> None:
        self.retries[0] += 1

    # -- reading back ------------------------------------------------------------------------
    def find(self, to: str, body_sha256: str, since: datetime) -> list[str]:
        """Sids of messages to `to` from this sender whose body hashes (SHA-256 of the UTF-8 text)
        to `body_sha256`, created at or after `since` (naive UTC), newest first. Pages through the
        recipient's messages until a whole page is older than `since`."""
        found: list[str] = []
        url: str | None = self.messages_url
        params: dict | None = {"To": to, "PageSize": PAGE_SIZE}
        while url:
            response = self._get(url, params)
            if response.status_code in (401, 403):
                raise DestinationError(f"Twilio refused the credentials ({response.status_code}) while checking "
                                       "for an earlier message: check the account SID and auth token")
            if response.status_code >= 400:
                code, message = _error(response)
                raise DestinationError(f"Twilio could not list messages ({response.status_code}, code {code}): "
                                       f"{message}; rerun later (nothing was sent twice)")
            page = response.json()
            messages = page.get("messages") or []
            recent = 0
            for message in messages:
                created = parse_twilio_date(message.get("date_created"))
                if created is not None and created < since:
                    continue
                recent += 1
                if (message.get("to") == to and body_hash(message.get("body") or "") == body_sha256
                        and self._same_sender(message)):
                    found.append(message["sid"])
            nxt = page.get("next_page_uri")
            if not nxt or (messages and not recent):
                break
            url, params = self._absolute(nxt), None
        return found

    # -- erasure -----------------------------------------------------------------------------
    def forget(self, rows: list[dict]) -> list[RowResult]:
        """Delete every message record of the account to each row's phone (any sender)."""
        results = []
        for row in rows:
            phone = row.get("phone")
            deleted = 0
            if phone:
                for sid in self._sids_to(phone):
                    self._delete(sid)
                    deleted += 1
            results.append(RowResult(row["key"], True, destination_id=f"{deleted} messages deleted"))
        return results

    def _sids_to(self, to: str) -> list[str]:
        sids: list[str] = []
        url: str | None = self.messages_url
        params: dict | None = {"To": to, "PageSize": PAGE_SIZE}
        while url:
            response = self._get(url, params)
            if response.status_code >= 400:
                code, message = _error(response)
                raise DestinationError(f"Twilio could not list messages for deletion ({response.status_code}, "
                                       f"code {code}): {message}; rerun lifeline forget later")
            page = response.json()
            sids += [m["sid"] for m in page.get("messages") or [] if m.get("to") == to]
            nxt = page.get("next_page_uri")
            url, params = (self._absolute(nxt), None) if nxt else (None, None)
        return sids

    def _delete(self, sid: str) -> None:
        url = self.messages_url.removesuffix(".json") + f"/{sid}.json"
        response = self._idempotent("DELETE", url, None, "while deleting messages; rerun lifeline forget "
                                                         "(deleting again is safe)")
        if response.status_code >= 300 and response.status_code != 404:
            code, message = _error(response)
            raise DestinationError(f"Twilio refused to delete a message ({response.status_code}, code {code}): "
                                   f"{message}")

    def _get(self, url: str, params: dict | None) -> requests.Response:
        return self._idempotent("GET", url, params, "while checking for an earlier message; nothing was sent "
                                                    "twice: rerun later")

    def _idempotent(self, method: str, url: str, params: dict | None, context: str) -> requests.Response:
        """A GET or DELETE, retried on connection errors, timeouts, 429 and 5xx (safe to repeat)."""
        attempts = self._attempts()
        try:
            for attempt in attempts:
                with attempt:
                    self.rate.try_acquire("twilio")
                    try:
                        response = self.http.request(method, url, params=params, timeout=(5, self.timeout_s))
                    except requests.RequestException as exc:
                        raise _Transient(f"no answer from Twilio ({type(exc).__name__})") from None
                    if response.status_code in TRANSIENT:
                        raise _Transient(f"Twilio answered {response.status_code}")
                    return response
        except _Transient as exc:
            raise DestinationError(f"Twilio kept failing ({exc}) {context}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _same_sender(self, message: dict) -> bool:
        if self.messaging_service_sid:
            return message.get("messaging_service_sid") == self.messaging_service_sid
        return message.get("from") == self.from_number

    def _absolute(self, uri: str) -> str:
        """next_page_uri is relative to the API host (`/2010-04-01/...`); keep our base URL's prefix."""
        if uri.startswith("http"):
            return uri
        return self.base_url + uri[uri.index(f"/{API_VERSION}/"):] if f"/{API_VERSION}/" in uri else self.base_url + uri


def _with_labels(url: str, campaign: str | None, external_id: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("campaign", "external_id")]
    query += [(k, v) for k, v in (("campaign", campaign), ("external_id", external_id)) if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def from_config(dest: Destination, env: Mapping[str, str]) -> TwilioMessages:
    """The client a sync's `destination:` describes; the account SID and auth token come from the
    environment variables it names (account_sid_env, api_key_env)."""
    account_sid = env.get(dest.account_sid_env or "")
    if not account_sid:
        raise MissingSecret(f"environment variable {dest.account_sid_env} is not set: export it with the Twilio "
                            "account SID (AC...); the auth token goes in " + str(dest.api_key_env))
    return TwilioMessages(dest.resolved_base_url(env), account_sid, dest.api_key(env), from_number=dest.from_number,
                          messaging_service_sid=dest.messaging_service_sid,
                          status_callback=dest.status_callback, rate_limits=dest.client_rate_limits,
                          timeout_s=dest.timeout_s)
