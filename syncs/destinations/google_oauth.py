"""OAuth 2.0 access tokens for Google APIs: a fixed token, or short-lived ones from a refresh token.

Google's token endpoint (`POST https://oauth2.googleapis.com/token`, form-encoded
`grant_type=refresh_token`, `client_id`, `client_secret`, `refresh_token`) answers
`{access_token, expires_in, token_type: "Bearer", scope}`. A RefreshingToken asks for a token when it
holds none, when the one it holds is within its margin of expiry (a tenth of its lifetime, at most
60 s), and when the API refused it (`refresh(stale)`, called on a 401 UNAUTHENTICATED). Refusals
name the environment variable to fix: `invalid_grant` (the refresh token is expired, revoked or
another client's) names the refresh-token variable, `invalid_client` the client id and secret.
Token values never reach a log line or an error message. 429/5xx of the token endpoint are retried
by the session (syncs/http.py).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests

from syncs.destinations.base import DestinationError
from syncs.http import session

log = logging.getLogger(__name__)
SCOPE = "https://www.googleapis.com/auth/datamanager"
MAX_MARGIN_S = 60.0


class TokenSource(Protocol):
    variables: str  # the environment variable(s) holding the credentials, for error messages

    def token(self) -> str:
        """A current access token."""
        ...

    def refresh(self, stale: str) -> str | None:
        """The API refused `stale`: a new token, or None when this source cannot get one."""
        ...


@dataclass
class FixedToken:
    """An access token from the environment, used as it is (refreshing it is the caller's job)."""
    value: str
    variables: str

    def token(self) -> str:
        return self.value

    def refresh(self, stale: str) -> str | None:
        return None


@dataclass(frozen=True)
class RefreshCredentials:
    client_id: str
    client_secret: str
    refresh_token: str


@dataclass(frozen=True)
class CredentialVariables:
    """The names of the variables holding each credential (what an error tells the user to fix)."""
    client_id: str
    client_secret: str
    refresh_token: str


class RefreshingToken:
    """Access tokens exchanged for a refresh token, renewed before they expire; thread-safe."""

    def __init__(self, token_url: str, credentials: RefreshCredentials, names: CredentialVariables,
                 timeout_s: float = 60, clock: Callable[[], float] = time.monotonic):
        self.token_url = token_url
        self._credentials = credentials
        self.names = names
        self.variables = f"{names.refresh_token} (with {names.client_id} and {names.client_secret})"
        self.timeout_s = timeout_s
        self.http, self.retries = session()
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._renew_at = 0.0
        self.refreshes = 0  # tokens obtained so far

    def token(self) -> str:
        with self._lock:
            if self._value is None or self._clock() >= self._renew_at:
                self._fetch()
            assert self._value is not None
            return self._value

    def refresh(self, stale: str) -> str:
        with self._lock:
            if self._value == stale:  # another thread may have renewed it already
                self._fetch()
            assert self._value is not None
            return self._value

    def _fetch(self) -> None:
        c = self._credentials
        asked = self._clock()
        response = self.http.post(self.token_url, timeout=self.timeout_s, data={
            "grant_type": "refresh_token", "client_id": c.client_id, "client_secret": c.client_secret,
            "refresh_token": c.refresh_token})
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if not response.ok:
            raise DestinationError(self._refusal(response.status_code, body))
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token or str(body.get("token_type", "")).lower() != "bearer" \
                or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise DestinationError(f"Google's token endpoint {self.token_url} answered without a Bearer access_token "
                                   "and expires_in; check oauth.token_url in syncs.yml")
        self._value = token
        self._renew_at = asked + lifetime - min(MAX_MARGIN_S, lifetime / 10)
        self.refreshes += 1
        log.info("Google access token refreshed (valid %ss)", lifetime)

    def _refusal(self, status: int, body: dict) -> str:
        code = str(body.get("error") or f"HTTP {status}")
        what = f"Google's token endpoint refused the refresh ({status} {code}: " \
               f"{str(body.get('error_description') or '')[:200]})"
        n = self.names
        if code == "invalid_grant":
            return (f"{what}: the refresh token in {n.refresh_token} is expired, revoked or was issued to another "
                    f"client; create a new one for the client in {n.client_id} with the {SCOPE} scope and export it "
                    f"as {n.refresh_token}; nothing was sent")
        if code in ("invalid_client", "unauthorized_client"):
            return (f"{what}: check {n.client_id} and {n.client_secret} hold the OAuth client id and secret the "
                    f"refresh token in {n.refresh_token} was issued to; nothing was sent")
        return f"{what}: check oauth.token_url ({self.token_url}) in syncs.yml; nothing was sent"
