"""The real sandbox app served from a thread behind a request counter, so a fault test can act
(SIGKILL a sync, restart PostgreSQL) when the N-th platform request arrives, i.e. mid-batch; plus the
Mailchimp sync and readers the PostgreSQL-restart and two-process tests share."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from uvicorn_thread import UvicornThread

from syncs.sandbox.server import create_app

TOKEN = "sandbox-token"
MEMBERS = 3_000  # six batch-subscribe calls of 500 for the Mailchimp tests


def write_config(path: Path, base_url: str) -> Path:
    path.write_text(f"""syncs:
  - name: mailchimp_cart
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: mailchimp, list_id: cart, base_url: {base_url}/mailchimp, api_key_env: TEST_MAILCHIMP_KEY}}
    safety: {{max_add_multiple: 100}}
""")
    return path


def mailchimp_members(base_url: str) -> set[str]:
    emails: set[str] = set()
    for offset in range(0, MEMBERS + 1_000, 1_000):
        body = requests.get(f"{base_url}/mailchimp/3.0/lists/cart/members", auth=("x", TOKEN), timeout=10,
                            params={"count": 1_000, "offset": offset, "status": "subscribed"}).json()
        emails |= {m["email_address"] for m in body.get("members", [])}
    return emails


class CountingSandbox:
    """`create_app(state_dir, **opts)` on a free loopback port; `.requests` counts platform requests
    (not /_sandbox control calls) as they arrive, `.in_flight` those not answered yet. While
    `.gate` is cleared, platform requests from the `.hold_from`-th on (default: every one) are held
    (counted, not answered) until it is set again."""

    def __init__(self, state_dir: Path, **opts: Any):
        self.app = create_app(Path(state_dir), **opts)
        self.requests = 0
        self.in_flight = 0
        self.gate = threading.Event()
        self.gate.set()
        self.hold_from = 1
        self._server = UvicornThread(self._count, lifespan="on", name="sandbox")
        self.base_url = self._server.url

    async def _count(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        self.requests += 1
        number = self.requests
        self.in_flight += 1
        try:
            while number >= self.hold_from and not self.gate.is_set():
                await asyncio.sleep(0.005)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def wait_for(self, count: int, alive, poll_s: float = 0.002) -> bool:
        """Block until `count` requests arrived (True) or `alive()` turns false first (False)."""
        while self.requests < count:
            if not alive():
                return False
            time.sleep(poll_s)
        return True

    def __enter__(self) -> "CountingSandbox":
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


def synced_emails(warehouse, sync_name: str = "klaviyo_cart") -> set[str]:
    """The emails (of tests/sync's people()) the sync's state claims as synced."""
    engine = warehouse.engine()
    with engine.connect() as conn:
        keys = {k for (k,) in conn.execute(sa.text(
            "select key from lifeline_state.sync_state where sync_name = :n and status = 'synced'"), {"n": sync_name})}
    engine.dispose()
    return {f"person{int(k.removeprefix('p_'))}@example.com" for k in keys}
