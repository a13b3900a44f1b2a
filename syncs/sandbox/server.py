"""Sandbox destinations: local stand-ins for the real platforms (`lifeline sandbox`).

Each platform is served under its own prefix and speaks that platform's paths, auth form, bodies,
batch limits, per-record errors and rate-limit answers (shared/destinations.md), so a client that
works here works against the platform once its base URL and credentials change:

| prefix | stands in for | auth form (token = LIFELINE_SANDBOX_TOKEN) |
|---|---|---|
| `/klaviyo/api/...` | `https://a.klaviyo.com/api/...` | `Authorization: Klaviyo-API-Key <token>` (or Bearer) + `revision: YYYY-MM-DD` |
| `/mailchimp/3.0/...` | `https://<dc>.api.mailchimp.com/3.0/...` | HTTP Basic, any user, password `<token>` or `<token>-<dc>` |
| `/braze/...` | `https://rest.<instance>.braze.com/...` | `Authorization: Bearer <token>` |
| `/twilio/2010-04-01/Accounts/{AC...}/Messages.json` | `https://api.twilio.com/...` | HTTP Basic `AC...:<token>` |
| `/meta/vNN.0/{audience_id}/users` | `https://graph.facebook.com/vNN.0/...` | `access_token=<token>` parameter |
| `/google/v1/audienceMembers:ingest` / `:remove` | `https://datamanager.googleapis.com/v1/...` | `Authorization: Bearer <token>` (or a token issued by `/google/oauth2/token`) |
| `/google/oauth2/token` | `https://oauth2.googleapis.com/token` | form `client_secret` and `refresh_token` = `<token>` |
| `/tiktok/open_api/v1.3/dmp/custom_audience/...` | `https://business-api.tiktok.com/open_api/v1.3/...` | `Access-Token: <token>` header |
| `/webhook/{name}` | your own HTTPS endpoint | `X-Lifeline-Signature: t=<unix>,v1=<hex HMAC-SHA256(token, "<t>.<body>")>` |

Wrong credentials are answered as the platform answers them (Klaviyo 401 JSON:API errors,
Mailchimp 401 problem+json, Twilio 401 code 20003, Meta 400 OAuthException code 190, Google 401
UNAUTHENTICATED, TikTok code 40105, webhook 401). Per-platform details (limits, error shapes,
where the sandbox had to choose because the platform documents nothing) are in each module's
docstring: klaviyo.py, mailchimp.py, braze.py, twilio.py, meta.py, google.py, tiktok.py, webhook.py.
Lists/audiences: Klaviyo lists must be created (`POST /klaviyo/api/lists`, 150 per day) and are
found by name (`GET /klaviyo/api/lists?filter=equals(name,"welcome")`); Mailchimp lists, Meta,
Google and TikTok audiences exist on first use.

Running it
  lifeline sandbox [--port 8787] [--reset] [--no-rate-limits]   (loopback only; state in .lifeline/sandbox)
  serve(host, port, state_dir, reset, rate_limits, faults, **options)   blocking; refuses non-loopback hosts
  run_in_thread(state_dir, port=0, **options) -> SandboxThread   `.base_url`, `.stop()`, context manager
  create_app(state_dir, token, rate_limits, faults, **options) -> Starlette

Environment (read only by `serve` / the CLI)
  LIFELINE_SANDBOX_TOKEN   the accepted token (default `sandbox-token`)
  LIFELINE_SANDBOX_META_APP_SECRET   when set, Meta calls need appsecret_proof made with it
  LIFELINE_SANDBOX_FAULTS  injected faults, `<platform>:<key>=<value>,...;<platform>:...`, keys
                           error_rate (share answered 5xx), latency_ms (added delay), drop_rate (share
                           of connections closed without any response), burst_429 (share answered with
                           the platform's own 429). Example:
                           `klaviyo:error_rate=0.1,latency_ms=20;twilio:drop_rate=0.05`

Options (keyword arguments of create_app / serve / run_in_thread)
  rate_limits=True         the documented limits (False turns every rate limit off, batch limits stay)
  faults={platform: {...}} as above; fault_seed=0 seeds the fault dice (same seed, same faults)
  limit_overrides={"klaviyo:M": [(10, 1), (150, 60)]}   replace a rate-limit class: (limit, seconds)
                           windows. Classes: klaviyo:XS|S|M|L|XL, braze:users_track|users_delete|default,
                           twilio:api, meta:ca, google:api, tiktok:api (see limits.py)
  klaviyo_job_delay_s=0    bulk-import jobs read `queued` until this many seconds have passed
  klaviyo_lists_per_day=150, mailchimp_concurrency=10, webhook_tolerance_s=300, tiktok_min_audience=1000
  meta_app_secret=None     Meta requires appsecret_proof made with this app secret (serve: from
                           LIFELINE_SANDBOX_META_APP_SECRET)
  google_token_lifetime_s=3599   lifetime of the access tokens POST /google/oauth2/token issues
  reset=False              start empty

Control endpoints (no auth; loopback only)
  GET  /_sandbox/health                      {"status": "ok", ...}
  GET  /_sandbox/summary                     what each destination holds (counts per list/audience)
  POST /_sandbox/reset                       forget everything
  GET|POST /_sandbox/faults                  read / replace faults: {"klaviyo": {"error_rate": 0.1}, "fault_seed": 3}
  POST /_sandbox/limits                      {"enabled": false} or {"overrides": {"twilio:api": [[5, 1]]}}
  GET  /_sandbox/{meta|google|tiktok|mailchimp|braze}/audiences   members held by write-only platforms
  GET|POST /_sandbox/twilio/optouts          {"numbers": ["+1..."]}: sends to them fail with 21610
  POST /_sandbox/google/expire_tokens       expire every issued Google access token (as a revocation would)
  POST /_sandbox/twilio/inbound              simulate an inbound SMS: {"From": "+1...", "Body": "STOP"}
  GET  /_sandbox/webhook/{name}              deliveries received by /webhook/{name}
  POST /_sandbox/simulate/engagement         {"seed", "open_rate", "click_rate", "occurred_at"}: seeded opens
                                             and clicks for Klaviyo list members and Twilio messages
  GET  /_sandbox/message_events              rows shaped like raw.message_events (message_id, channel,
                                             event, occurred_at, recipient, campaign, external_id)

State lives in `<state_dir>/sandbox.sqlite3` (SQLite, rollback journal, one transaction per request), so it
survives a restart; `reset` starts empty. Klaviyo's profiles are found by email, phone_number and
external_id through an in-memory index rebuilt from that file on the first Klaviyo request after a
start (syncs/sandbox/profile_keys.py). Measured throughput: benchmarks/bench_sandbox.py.
"""
from __future__ import annotations

import gc
import ipaddress
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from syncs.sandbox import braze, control, engagement, google, klaviyo, mailchimp, meta, tiktok, twilio, webhook
from syncs.sandbox.common import Context
from syncs.sandbox.faults import FaultMiddleware, FaultSpec, FaultState, parse_faults, validate_faults
from syncs.sandbox.limits import default_limiter
from syncs.sandbox.store import Store

DEFAULT_TOKEN = "sandbox-token"


def platform_modules() -> dict[str, ModuleType]:
    return {"klaviyo": klaviyo, "mailchimp": mailchimp, "braze": braze, "twilio": twilio, "meta": meta,
            "google": google, "tiktok": tiktok, "webhook": webhook}


class SandboxApp(Starlette):
    """Starlette with the fault layer outermost, so it sees the server's own `send` (to drop a
    connection it must reach uvicorn's transport, which Starlette's middleware stack would hide)."""

    fault_layer: FaultMiddleware | None = None

    async def route(self, scope: dict, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await (self.fault_layer or self.route)(scope, receive, send)


def create_app(state_dir: Path, token: str = DEFAULT_TOKEN, rate_limits: bool = True,
               faults: dict | None = None, *, reset: bool = False, fault_seed: int = 0,
               limit_overrides: dict[str, Any] | None = None, klaviyo_job_delay_s: float = 0.0,
               klaviyo_lists_per_day: int = 150, mailchimp_concurrency: int = 10,
               webhook_tolerance_s: int = 300, tiktok_min_audience: int = 1000,
               meta_app_secret: str | None = None, google_token_lifetime_s: int = 3599) -> Starlette:
    """The ASGI app. `faults` maps platform -> {error_rate, latency_ms, drop_rate, burst_429};
    `limit_overrides` maps a rate-limit class (e.g. 'klaviyo:M') -> [(limit, seconds), ...]."""
    store = Store(Path(state_dir), reset=reset)
    ctx = Context(store=store, token=token, limiter=default_limiter(rate_limits, limit_overrides),
                  klaviyo_job_delay_s=klaviyo_job_delay_s, klaviyo_lists_per_day=klaviyo_lists_per_day,
                  mailchimp_concurrency=mailchimp_concurrency, webhook_tolerance_s=webhook_tolerance_s,
                  options={"tiktok_min_audience": tiktok_min_audience, "meta_app_secret": meta_app_secret,
                           "google_token_lifetime_s": google_token_lifetime_s})
    fault_state = FaultState(validate_faults(faults or {}), seed=fault_seed)
    modules = platform_modules()
    extra = [route for m in (*modules.values(), engagement)
             for route in getattr(m, "control_routes", lambda c: [])(ctx)]
    app = SandboxApp(routes=[control.routes(ctx, fault_state, modules, extra)]
                    + [m.routes(ctx) for m in modules.values()],
                    lifespan=_closing(store))
    canned = {name: {"throttled": m.throttled_response, "server_error": m.server_error_response}
              for name, m in modules.items()}
    app.fault_layer = FaultMiddleware(app.route, faults=fault_state, canned=canned,
                                      concurrency={"mailchimp": mailchimp_concurrency},
                                      concurrency_on=lambda: ctx.rate_limits)
    app.state.ctx = ctx
    app.state.faults = fault_state
    return app


def _closing(store: Store):
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()
    return lifespan


def ensure_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the sandbox accepts a well-known token."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise ValueError(f"cannot resolve host {host!r}; the sandbox serves on loopback only "
                         f"(use 127.0.0.1)") from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(f"refusing to serve the sandbox on {host!r}: it accepts a well-known token, so it "
                         f"listens on loopback only (use 127.0.0.1 or localhost)")


def faults_from_env(env: dict[str, str] | None = None) -> dict[str, FaultSpec]:
    text = (env if env is not None else os.environ).get("LIFELINE_SANDBOX_FAULTS", "")
    return parse_faults(text) if text.strip() else {}


def serve(host: str = "127.0.0.1", port: int = 8787, state_dir: Path = Path(".lifeline/sandbox"),
          reset: bool = False, rate_limits: bool = True, faults: dict | None = None, **options: Any) -> None:
    """Serve on loopback until interrupted. Token from LIFELINE_SANDBOX_TOKEN, faults from
    LIFELINE_SANDBOX_FAULTS unless `faults` is given."""
    ensure_loopback(host)
    token = os.environ.get("LIFELINE_SANDBOX_TOKEN", DEFAULT_TOKEN)
    options.setdefault("meta_app_secret", os.environ.get("LIFELINE_SANDBOX_META_APP_SECRET") or None)
    app = create_app(Path(state_dir), token=token, rate_limits=rate_limits,
                     faults=faults if faults is not None else faults_from_env(), reset=reset, **options)
    # This process only serves the sandbox: large batches allocate ~10 objects per record, and the
    # default young-generation threshold (700) makes the cyclic GC cost ~20% of a bulk import.
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class SandboxThread:
    """The sandbox served from a background thread (tests, `lifeline demo`); a context manager."""

    def __init__(self, state_dir: Path, port: int = 0, host: str = "127.0.0.1", **opts: Any):
        ensure_loopback(host)
        self.app = create_app(Path(state_dir), **opts)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="lifeline-sandbox", daemon=True)

    def start(self) -> "SandboxThread":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start; see the log above")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> "SandboxThread":
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(state_dir: Path, port: int = 0, **opts: Any) -> SandboxThread:
    """Start the sandbox in a background thread; returns it started (use `.base_url`, `.stop()`)."""
    return SandboxThread(Path(state_dir), port=port, **opts).start()
