"""Google Data Manager with refresh-token credentials against the sandbox's token endpoint and a real
DuckDB warehouse: short-lived tokens are renewed before they expire and once on a 401; a refused
refresh stops the run naming the variable to fix, sends nothing and marks nothing; no token value
reaches a log line or an error message."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
import requests
from ads_helpers import TOKEN, Recorder, held, state, write_config
from sync_helpers import people, set_audience
from test_google_sync import USER_LIST, key

from syncs.config import SyncConfigError, load_syncs
from syncs.destinations import google
from syncs.destinations.base import DestinationError
from syncs.engine import run_sync
from syncs.sandbox.server import run_in_thread

ENV = {"GOOGLE_OAUTH_CLIENT_ID": "1234.apps.googleusercontent.com", "GOOGLE_OAUTH_CLIENT_SECRET": TOKEN,
       "GOOGLE_OAUTH_REFRESH_TOKEN": TOKEN}


@dataclass
class Exchange:
    path: str
    status: int
    response: bytes


@dataclass
class Wire(Recorder):
    """The sandbox's requests (Recorder.seen) and the status and body of each answer, in arrival order."""
    answers: list[Exchange] = field(default_factory=list)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        exchange = Exchange(scope["path"], 0, b"")
        self.answers.append(exchange)

        async def keep(message):
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
            elif message["type"] == "http.response.body":
                exchange.response += message.get("body", b"")
            await send(message)

        return await super().__call__(scope, receive, keep)

    def token_calls(self) -> list[Exchange]:
        return [e for e in self.answers if e.path == "/google/oauth2/token"]

    def api_calls(self, status: int | None = None) -> list[Exchange]:
        return [e for e in self.answers if e.path.startswith("/google/v1/") and status in (None, e.status)]


def wire_of(sandbox) -> Wire:
    wire = Wire(sandbox.app.fault_layer)
    sandbox.app.fault_layer = wire
    return wire


@pytest.fixture
def start(tmp_path):
    started = []

    def start_sandbox(**opts):
        server = run_in_thread(tmp_path / "sandbox", token=TOKEN, rate_limits=False, **opts)
        started.append(server)
        return server

    yield start_sandbox
    for server in started:
        server.stop()


def sync_for(tmp_path, base_url: str):
    [sync] = load_syncs(write_config(tmp_path / "syncs.yml", "google_cart", (
        f'{{type: google, customer_id: "123-456-7890", audience_id: {USER_LIST}, base_url: "{base_url}/google", '
        "oauth: {client_id_env: GOOGLE_OAUTH_CLIENT_ID, client_secret_env: GOOGLE_OAUTH_CLIENT_SECRET, "
        "refresh_token_env: GOOGLE_OAUTH_REFRESH_TOKEN, "
        f'token_url: "${{LIFELINE_GOOGLE_TOKEN_URL:-{base_url}/google/oauth2/token}}"}}, client_rate_limits: false}}')))
    return sync


def issued(wire: Wire) -> list[str]:
    return [json.loads(e.response)["access_token"] for e in wire.token_calls() if e.status == 200]


def assert_no_token_leaked(wire: Wire, *texts: str) -> None:
    secrets = issued(wire) + [TOKEN]
    assert secrets and not [s for s in secrets for text in texts if s in text]


def test_a_sync_spanning_token_expiry_completes_with_exactly_the_audience(duck_warehouse, start, tmp_path, caplog):
    # 1 s tokens, and every call to Google takes 0.4 s: three 10,000-member requests outlive the first token
    sandbox = start(google_token_lifetime_s=1, faults={"google": {"latency_ms": 400}})
    wire = wire_of(sandbox)
    members = people(20_500)
    set_audience(duck_warehouse, members)
    caplog.set_level(logging.DEBUG)
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env=ENV, progress=False)
    assert (result.status, result.adds, result.rejections) == ("success", 20_500, 0), result.message
    assert held(sandbox.base_url, "google", USER_LIST) == {key(m["email"]) for m in members}
    assert len(wire.token_calls()) >= 2  # the first token, and at least one refresh during the run
    assert len(wire.api_calls(200)) == 3  # each request applied once; a 401 (if any) was followed by one resend
    assert len(wire.api_calls(401)) <= len(wire.token_calls()) - 1
    form = parse_qs(next(r for r in wire.seen if r.path == "/google/oauth2/token").body.decode())
    assert form == {"grant_type": ["refresh_token"], "client_id": [ENV["GOOGLE_OAUTH_CLIENT_ID"]],
                    "client_secret": [TOKEN], "refresh_token": [TOKEN]}
    assert_no_token_leaked(wire, caplog.text, result.message or "")


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"key": m["profile_id"], "email": m["email"], "destination_id": None} for m in people(n, start)]


def test_a_token_refused_with_401_is_refreshed_once_and_the_request_resent(start, tmp_path):
    sandbox = start()  # tokens live 3599 s: only the expiry forced below makes Google refuse one
    wire = wire_of(sandbox)
    client = google.from_config(sync_for(tmp_path, sandbox.base_url).destination, ENV)
    assert all(r.ok for r in client.add(rows(5)))
    requests.post(f"{sandbox.base_url}/_sandbox/google/expire_tokens", timeout=10).raise_for_status()
    assert all(r.ok for r in client.add(rows(3, start=5)))
    refused = wire.api_calls(401)
    assert len(refused) == 1 and json.loads(refused[0].response) == {"error": {
        "code": 401, "status": "UNAUTHENTICATED", "message": "Request had invalid authentication credentials. "
        "Expected OAuth 2 access token, login cookie or other valid authentication credential."}}
    assert (len(wire.token_calls()), len(wire.api_calls(200))) == (2, 2)  # one refresh, the request resent once
    assert held(sandbox.base_url, "google", USER_LIST) == {key(m["email"]) for m in people(8)}


def test_a_second_401_after_the_refresh_stops_with_a_clear_error(start, tmp_path):
    sandbox = start(google_token_lifetime_s=1, faults={"google": {"latency_ms": 1100}})  # expired on arrival
    wire = wire_of(sandbox)
    client = google.from_config(sync_for(tmp_path, sandbox.base_url).destination, ENV)
    with pytest.raises(DestinationError, match=r"401 UNAUTHENTICATED.*refreshed token too: check the credentials in "
                                               r"GOOGLE_OAUTH_REFRESH_TOKEN \(with GOOGLE_OAUTH_CLIENT_ID"):
        client.add(rows(2))
    assert len(wire.api_calls(401)) == 2 and len(wire.token_calls()) == 2  # one refresh, one resend: no loop
    assert held(sandbox.base_url, "google", USER_LIST) == set()


def test_a_token_near_expiry_is_renewed_before_it_is_used(start, tmp_path):
    sandbox = start(google_token_lifetime_s=1)
    wire = wire_of(sandbox)
    client = google.from_config(sync_for(tmp_path, sandbox.base_url).destination, ENV)
    assert all(r.ok for r in client.add(rows(5)))
    assert all(r.ok for r in client.add(rows(2, start=5)))  # well within the token's second: no new token
    time.sleep(1.0)
    assert all(r.ok for r in client.add(rows(3, start=7)))
    assert len(wire.token_calls()) == 2 and wire.api_calls(401) == []  # renewed first: never refused


@pytest.mark.parametrize("variable, value, problem, fix", [
    ("GOOGLE_OAUTH_REFRESH_TOKEN", "1//revoked-refresh-token", "400 invalid_grant: Token has been expired or revoked",
     "the refresh token in GOOGLE_OAUTH_REFRESH_TOKEN is expired, revoked or was issued to another client"),
    ("GOOGLE_OAUTH_CLIENT_SECRET", "GOCSPX-wrong-secret", "401 invalid_client",
     "check GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET"),
])
def test_a_refused_refresh_stops_the_run_naming_the_variable_and_marks_nothing(duck_warehouse, start, tmp_path,
                                                                               caplog, variable, value, problem, fix):
    sandbox = start()
    wire = wire_of(sandbox)
    set_audience(duck_warehouse, people(5))
    caplog.set_level(logging.DEBUG)
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env={**ENV, variable: value},
                      progress=False)
    assert result.status == "failed" and problem in result.message and fix in result.message, result.message
    assert len(wire.token_calls()) == 1 and wire.api_calls() == []  # not retried; nothing sent to Data Manager
    assert state(duck_warehouse, "sync_state", "key") == []
    assert held(sandbox.base_url, "google", USER_LIST) == set()
    assert value not in result.message and value not in caplog.text and TOKEN not in result.message


def test_a_missing_credential_variable_is_named_and_nothing_is_sent(duck_warehouse, start, tmp_path):
    sandbox = start()
    wire = wire_of(sandbox)
    set_audience(duck_warehouse, people(2))
    env = {k: v for k, v in ENV.items() if k != "GOOGLE_OAUTH_CLIENT_SECRET"}
    result = run_sync(duck_warehouse, sync_for(tmp_path, sandbox.base_url), env=env, progress=False)
    assert result.status == "failed" and "GOOGLE_OAUTH_CLIENT_SECRET is not set" in result.message
    assert wire.seen == [] and state(duck_warehouse, "sync_state", "key") == []


def test_the_token_endpoint_answers_like_google(start):
    sandbox = start(google_token_lifetime_s=120)
    url = f"{sandbox.base_url}/google/oauth2/token"
    good = {"grant_type": "refresh_token", "client_id": "c", "client_secret": TOKEN, "refresh_token": TOKEN}
    answer = requests.post(url, data=good, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"]) == (120, "Bearer")
    assert requests.post(url, data={**good, "grant_type": "password"}, timeout=10).json()["error"] == \
        "unsupported_grant_type"
    ingest = f"{sandbox.base_url}/google/v1/audienceMembers:ingest"
    unknown = requests.post(ingest, json={}, headers={"Authorization": "Bearer ya29.unknown"}, timeout=10)
    assert unknown.status_code == 401 and unknown.json()["error"]["status"] == "UNAUTHENTICATED"
    issued_ok = requests.post(ingest, json={}, headers={"Authorization": f"Bearer {body['access_token']}"},
                              timeout=10)
    assert issued_ok.status_code == 400  # past authentication: the empty body is what is refused


@pytest.mark.parametrize("destination, problem", [
    ("{type: google, customer_id: 123-456-7890, audience_id: 1, base_url: u}",
     r"needs api_key_env \(the variable holding the access token\) or oauth: "),
    ("{type: google, customer_id: 123-456-7890, audience_id: 1, base_url: u, api_key_env: K, "
     "oauth: {client_id_env: A, client_secret_env: B, refresh_token_env: C}}", r"either api_key_env .* or oauth"),
    ("{type: meta, audience_id: 1, base_url: u, api_key_env: K, "
     "oauth: {client_id_env: A, client_secret_env: B, refresh_token_env: C}}", r"oauth .* is for google"),
    ("{type: google, customer_id: 123-456-7890, audience_id: 1, base_url: u, oauth: {client_id_env: A}}",
     r"oauth.client_secret_env: Field required"),
])
def test_bad_oauth_config_names_the_field(tmp_path, destination, problem):
    with pytest.raises(SyncConfigError, match=problem):
        load_syncs(write_config(tmp_path / "syncs.yml", "g", destination))
