"""Google Customer Match through the Data Manager API (https://datamanager.googleapis.com/v1;
shared/destinations.md §3b). Since April 2026 new Customer Match integrations must use it [G6].

Adding: `POST /v1/audienceMembers:ingest`, removing: `POST /v1/audienceMembers:remove`, at most
10,000 members per request [G7], `Authorization: Bearer <OAuth access token>` (scope
https://www.googleapis.com/auth/datamanager). The token is either fixed (the variable named by
api_key_env holds a current one) or refreshed (destination `oauth: {client_id_env, client_secret_env,
refresh_token_env, token_url}`: google_oauth.RefreshingToken renews it before it expires, and once
more when a request is answered 401 UNAUTHENTICATED, which is then sent again). Each member carries
`emailAddress` and/or `phoneNumber` as lowercase hex SHA-256 (`encoding: HEX`) of the value
normalised by Google's formatter rules
(normalize.google_*: trim, lowercase, Gmail/Googlemail dots and +suffix dropped, phone as +digits,
whitespace removed before hashing). No raw email or phone leaves the machine. Names are not sent:
the Data Manager `address` identifier needs regionCode and postalCode too, which audience_members
does not carry. The destination is `operatingAccount {accountType: GOOGLE_ADS, accountId:
customer_id}` with `productDestinationId` = the user list id (audience_id). Ingest sends
`termsOfService.customerMatchTermsOfServiceStatus: ACCEPTED` and request-level consent
`adUserData` / `adPersonalization` = CONSENT_GRANTED: the rows are people who consented to
marketing (audience_members only holds consented people); a sync must not be pointed at rows
without that consent.

Errors: the API validates a request as a whole. A 400 INVALID_ARGUMENT whose fieldViolations name
`audience_members[i]` is the partial-failure report: those rows become rejections (code
INVALID_ARGUMENT, the violation text) and the rest is sent again once. Any other 400 (terms,
destination) or 404 stops the run with Google's message; 401 (after the one refresh) and 403 name
the variables holding the credentials.
HTTP 429 RESOURCE_EXHAUSTED and 5xx are retried with backoff by the session (syncs/http.py).

GDPR: the Data Manager API has no per-person deletion call; `forget()` removes the person from the
user list (their stored identifiers, plus their email and phone hashes each on their own).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import requests

from syncs.config import Destination
from syncs.destinations import normalize as norm
from syncs.destinations.base import DestinationError, RowResult
from syncs.destinations.google_oauth import (CredentialVariables, FixedToken, RefreshCredentials, RefreshingToken,
                                             TokenSource)
from syncs.destinations.hashed_audience import HashedAudience, Hasher, Identity, encode
from syncs.http import limiter, session

MAX_MEMBERS = 10_000           # [G7] the official sample's batch size
RATE = [(300, 60)]             # no published quota; 300 requests/minute (the sandbox's choice, too)
NO_LIMIT = [(100_000, 1)]
CONSENT = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
TERMS = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
_MEMBER_FIELD = re.compile(r"^audience_?[mM]embers\[(\d+)\]")
_FIELDS = {"EMAIL": "emailAddress", "PHONE": "phoneNumber"}


CONTACT: list[Hasher] = [("email", "EMAIL", lambda v: norm.google_hash(norm.google_email(v))),
                         ("phone", "PHONE", lambda v: norm.google_hash(norm.google_phone(v)))]


def member(identity: Identity) -> dict:
    return {"userData": {"userIdentifiers": [{_FIELDS[k]: v} for k, v in identity.items() if k in _FIELDS]}}


class GoogleAudience(HashedAudience):
    platform = "Google Customer Match"
    contact = CONTACT
    add_batch_size = MAX_MEMBERS
    remove_batch_size = MAX_MEMBERS
    calls_per_second = RATE[0][0] / RATE[0][1]
    calls_per_add_batch = 1
    forget_batch_size = MAX_MEMBERS // 3

    def __init__(self, base_url: str, access_token: str | TokenSource, customer_id: str, user_list_id: str,
                 key_env: str, rate_limits: bool = True, timeout_s: float = 60):
        """`access_token`: a fixed token (held by the variable `key_env`) or a TokenSource."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.tokens = FixedToken(access_token, key_env) if isinstance(access_token, str) else access_token
        self.key_env = self.tokens.variables
        self.customer_id = customer_id.replace("-", "")
        self.user_list_id = user_list_id
        self.destination = {"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": self.customer_id},
                            "productDestinationId": user_list_id}
        self.http, self.retries = session()
        self.rate = limiter(RATE if rate_limits else NO_LIMIT)

    # -- plumbing ----------------------------------------------------------------------------
    def _post(self, verb: str, identities: list[Identity]) -> dict[int, str]:
        """One request of at most MAX_MEMBERS; {} when applied, else {member index: violation}
        (Google applied nothing). Anything that is not about single members raises."""
        assert len(identities) <= MAX_MEMBERS
        body: dict = {"destinations": [self.destination], "audienceMembers": [member(i) for i in identities],
                      "encoding": "HEX"}
        if verb == "ingest":
            body.update(consent=CONSENT, termsOfService=TERMS)
        response = self._send(verb, body)
        if response.ok:
            return {}
        error = _error(response)
        what = f"Google audienceMembers:{verb} ({response.status_code} {error.get('status', '')}: " \
               f"{str(error.get('message', ''))[:300]})"
        if response.status_code == 401:
            advice = (f"check {self.key_env} holds a current OAuth access token" if isinstance(self.tokens, FixedToken)
                      else f"Google refused a freshly refreshed token too: check the credentials in {self.key_env} "
                           "were issued")
            raise DestinationError(f"{what}: {advice} with the https://www.googleapis.com/auth/datamanager scope")
        if response.status_code == 403:
            raise DestinationError(f"{what}: the token's user cannot write to Google Ads account {self.customer_id};"
                                   f" check {self.key_env} and customer_id")
        if response.status_code == 429:
            raise DestinationError(f"{what}: still throttled after {self.retries[0]} retries; rerun the sync later")
        violations = _violations(error)
        by_member: dict[int, str] = {}
        for field, description in violations:
            match = _MEMBER_FIELD.match(field)
            if match is None:
                raise DestinationError(f"{what}; {field}: {description}. Check customer_id, audience_id (the user "
                                       "list id) and that the account accepted the Customer Match terms")
            by_member.setdefault(int(match.group(1)), f"{field}: {description}"[:300])
        if response.status_code != 400 or not by_member:
            raise DestinationError(f"{what}; check customer_id and audience_id (the user list id) in syncs.yml")
        return by_member

    def _send(self, verb: str, body: dict) -> requests.Response:
        """POST once with the current token; on 401 UNAUTHENTICATED once more with a refreshed one."""
        url = f"{self.base_url}/v1/audienceMembers:{verb}"
        token = self.tokens.token()
        self.rate.try_acquire("google")
        response = self.http.post(url, json=body, timeout=self.timeout_s, headers={"Authorization": f"Bearer {token}"})
        fresh = self.tokens.refresh(token) if response.status_code == 401 else None
        if fresh is not None:
            self.rate.try_acquire("google")
            response = self.http.post(url, json=body, timeout=self.timeout_s,
                                      headers={"Authorization": f"Bearer {fresh}"})
        return response

    def _drop(self, identities: list[Identity]) -> None:
        for start in range(0, len(identities), MAX_MEMBERS):
            chunk = identities[start:start + MAX_MEMBERS]
            if self._post("remove", chunk):
                raise DestinationError("Google refused members of a remove request that it had accepted before; "
                                       "nothing was marked removed")

    def _put(self, pairs: list[tuple[dict, Identity]]) -> list[RowResult]:
        return [r for start in range(0, len(pairs), MAX_MEMBERS) for r in self.ingest(pairs[start:start + MAX_MEMBERS])]

    def ingest(self, sent: list[tuple[dict, Identity]]) -> list[RowResult]:
        """Send rows (at most MAX_MEMBERS); members Google names as invalid become rejections and the
        rest is sent again (a second refusal stops the run)."""
        bad = self._post("ingest", [ids for _, ids in sent])
        results = [RowResult(row["key"], False, code="INVALID_ARGUMENT", message=bad[i])
                   for i, (row, _) in enumerate(sent) if i in bad]
        rest = [pair for i, pair in enumerate(sent) if i not in bad]
        if bad and rest and self._post("ingest", [ids for _, ids in rest]):
            raise DestinationError("Google refused a batch again after its invalid members were taken out; "
                                   "nothing of it was marked synced")
        return results + [RowResult(row["key"], True, destination_id=encode(ids)) for row, ids in rest]


def from_config(dest: Destination, env: Mapping[str, str]) -> GoogleAudience:
    """The client a syncs.yml destination of type google describes: a fixed token from
    dest.api_key_env, or tokens refreshed with the credentials the variables of dest.oauth hold."""
    return GoogleAudience(dest.resolved_base_url(env), token_source(dest, env), dest.customer_id or "",
                          dest.audience_id or "", key_env=dest.api_key_env or "", rate_limits=dest.client_rate_limits,
                          timeout_s=dest.timeout_s)


def token_source(dest: Destination, env: Mapping[str, str]) -> TokenSource:
    if dest.oauth is None:
        return FixedToken(dest.api_key(env), dest.api_key_env or "")
    names = CredentialVariables(dest.oauth.client_id_env, dest.oauth.client_secret_env, dest.oauth.refresh_token_env)
    credentials = RefreshCredentials(dest.secret(env, names.client_id, "OAuth client id"),
                                     dest.secret(env, names.client_secret, "OAuth client secret"),
                                     dest.secret(env, names.refresh_token, "OAuth refresh token"))
    return RefreshingToken(dest.oauth.resolved_token_url(env), credentials, names, timeout_s=dest.timeout_s)


def _error(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _violations(error: dict) -> list[tuple[str, str]]:
    return [(str(v.get("field", "")), str(v.get("description", "")))
            for detail in error.get("details") or [] if isinstance(detail, dict)
            for v in detail.get("fieldViolations") or [] if isinstance(v, dict)]
