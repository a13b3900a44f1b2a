"""Shared by the Meta, Google and TikTok sync tests: a recorder of what the sandbox received (at the
server, below the fault layer's canned answers too), syncs.yml writing, reading what an audience
holds, and the check that no raw PII reached the platform."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_plus

import requests
import sqlalchemy as sa
from sync_helpers import people, set_audience

from syncs.engine import run_sync

TOKEN = "sandbox-token"


@dataclass
class Received:
    method: str
    path: str
    query: str
    body: bytes


@dataclass
class Recorder:
    """ASGI layer in front of the sandbox app: keeps every request exactly as it arrived."""
    app: object
    seen: list[Received] = field(default_factory=list)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.seen.append(Received(scope["method"], scope["path"], scope.get("query_string", b"").decode(), body))
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def again():
            return replay.pop() if replay else await receive()

        return await self.app(scope, again, send)

    def to(self, platform: str) -> list[Received]:
        return [r for r in self.seen if r.path.startswith(f"/{platform}/")]


def record(sandbox) -> Recorder:
    """Start recording what `sandbox` (a SandboxThread) receives."""
    recorder = Recorder(sandbox.app.fault_layer)
    sandbox.app.fault_layer = recorder
    return recorder


def write_config(path: Path, name: str, destination: str, source: str = "{audience: cart_abandonment, channel: email}",
                 safety: str = "{max_remove_share: 1, max_add_multiple: 1000}") -> Path:
    path.write_text(f"syncs:\n  - name: {name}\n    source: {source}\n    destination: {destination}\n"
                    f"    mode: add_remove\n    safety: {safety}\n")
    return path


def held(base_url: str, platform: str, audience: str) -> set[str]:
    body = requests.get(f"{base_url}/_sandbox/{platform}/audiences", params={"limit": 100_000}, timeout=60).json()
    return set((body["audiences"].get(audience) or {}).get("members", []))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def state(warehouse, table: str, columns: str) -> list[tuple]:
    engine = warehouse.engine()
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text(f"select {columns} from lifeline_state.{table} order by 1"))]
    engine.dispose()
    return rows


def assert_no_raw_pii(received: list[Received], members: list[dict]) -> None:
    """No request body or query string holds any member's email, phone (E.164 or bare digits) or name
    in any case, raw or URL-encoded."""
    assert received, "nothing was received: the check would prove nothing"
    texts = [(unquote_plus(r.query) + "\n" + unquote_plus(r.body.decode("utf-8", "replace"))).lower() for r in received]
    for m in members:
        secrets = {m["email"].lower()} if m.get("email") else set()
        if m.get("phone"):
            secrets |= {m["phone"], re.sub(r"\D", "", m["phone"])}
        secrets |= {m[f].lower() for f in ("first_name", "last_name") if m.get(f) and len(m[f]) > 3}
        for text in texts:
            for secret in secrets:
                assert secret not in text, "a raw identifier reached the platform"


def add_10500_then_keep_100(warehouse, sync, env: dict) -> None:
    """Past one 10,000 batch both ways: 10,500 members added, then 10,400 of them removed."""
    set_audience(warehouse, people(10_500))
    assert run_sync(warehouse, sync, env=env, progress=False).adds == 10_500
    set_audience(warehouse, people(100))
    assert run_sync(warehouse, sync, env=env, progress=False).removes == 10_400


def converges_under_faults(warehouse, sandbox, sync, env: dict, platform: str, seed: int) -> None:
    """30 members, then 20, while the platform answers 30% with its own throttling answer and 20%
    with a 5xx: both runs succeed, and at least one retry was made (the caller checks the audience)."""
    requests.post(f"{sandbox.base_url}/_sandbox/faults", json={platform: {"burst_429": 0.3, "error_rate": 0.2},
                                                               "fault_seed": seed}, timeout=10).raise_for_status()
    set_audience(warehouse, people(30))
    first = run_sync(warehouse, sync, env=env, progress=False)
    set_audience(warehouse, people(20))
    second = run_sync(warehouse, sync, env=env, progress=False)
    assert (first.status, second.status, second.removes) == ("success", "success", 10), (first, second)
    assert first.retries + second.retries > 0
