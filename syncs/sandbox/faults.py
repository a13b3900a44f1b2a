"""Fault injection per platform: injected 5xx, latency, dropped connections and bursts of 429.

Syntax of `LIFELINE_SANDBOX_FAULTS` (and of `parse_faults`): platforms separated by `;`, each
`<platform>:<key>=<value>,<key>=<value>`; keys are `error_rate` (share of requests answered 503),
`latency_ms` (added before answering), `drop_rate` (share of connections closed with no response)
and `burst_429` (share of requests answered with the platform's own 429). Example:
`klaviyo:error_rate=0.1,latency_ms=20;twilio:drop_rate=0.05`. Randomness is seeded (`fault_seed`).
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from syncs.sandbox.common import PLATFORMS

Scope = dict
Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    drop_rate: float = Field(0.0, ge=0, le=1)
    burst_429: float = Field(0.0, ge=0, le=1)


def validate_faults(raw: dict) -> dict[str, FaultSpec]:
    """{'klaviyo': {'error_rate': 0.1}} -> validated specs; a clear ValueError for anything else."""
    out: dict[str, FaultSpec] = {}
    for platform, spec in raw.items():
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r} in faults; use one of {', '.join(PLATFORMS)}")
        try:
            out[platform] = spec if isinstance(spec, FaultSpec) else FaultSpec(**spec)
        except (ValidationError, TypeError) as exc:
            raise ValueError(f"bad faults for {platform}: {exc}; keys are error_rate, latency_ms, "
                             f"drop_rate, burst_429") from exc
    return out


def parse_faults(text: str) -> dict[str, FaultSpec]:
    """Parse the LIFELINE_SANDBOX_FAULTS syntax (see the module docstring)."""
    raw: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        platform, sep, settings = part.partition(":")
        if not sep:
            raise ValueError(f"bad faults entry {part!r}: expected '<platform>:key=value,...', "
                             f"e.g. 'klaviyo:error_rate=0.1,latency_ms=20'")
        raw[platform.strip()] = {}
        for kv in filter(None, (s.strip() for s in settings.split(","))):
            key, eq, value = kv.partition("=")
            try:
                raw[platform.strip()][key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"bad faults setting {kv!r} for {platform}: expected key=<number>") from None
            if not eq:
                raise ValueError(f"bad faults setting {kv!r} for {platform}: expected key=<number>")
    return validate_faults(raw)


@dataclass
class FaultState:
    """Current faults plus one seeded random stream per platform (so runs are reproducible)."""
    specs: dict[str, FaultSpec]
    seed: int = 0
    _rngs: dict[str, random.Random] = field(default_factory=dict)

    def set(self, specs: dict[str, FaultSpec], seed: int | None = None) -> None:
        """Replace the faults; a new `seed` restarts the dice, none keeps rolling the same stream
        (so a caller toggling latency every half second does not replay the same first draws)."""
        self.specs = specs
        if seed is not None:
            self.seed = seed
            self._rngs.clear()

    def roll(self, platform: str) -> random.Random:
        if platform not in self._rngs:
            self._rngs[platform] = random.Random(f"{self.seed}:{platform}")
        return self._rngs[platform]


def platform_of(path: str) -> str | None:
    head = path.lstrip("/").split("/", 1)[0]
    return head if head in PLATFORMS else None


class FaultMiddleware:
    """Outermost ASGI layer: applies faults and the Mailchimp concurrent-connection limit.

    A dropped connection aborts the socket before any response byte (uvicorn's transport is
    reached through its `send` callable); the client sees a reset / remote disconnect.
    """

    def __init__(self, app: ASGIApp, faults: FaultState, canned: dict[str, dict[str, Callable[[], ASGIApp]]],
                 concurrency: dict[str, int], concurrency_on: Callable[[], bool]):
        self.app = app
        self.faults = faults
        self.canned = canned
        self.concurrency = concurrency
        self.concurrency_on = concurrency_on
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        platform = platform_of(scope.get("path", "")) if scope["type"] == "http" else None
        if platform is None:
            await self.app(scope, receive, send)
            return
        self.in_flight[platform] = self.in_flight.get(platform, 0) + 1
        try:
            await self._handle(platform, scope, receive, send)
        finally:
            self.in_flight[platform] -= 1

    async def _handle(self, platform: str, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self.concurrency.get(platform)
        if cap is not None and self.concurrency_on() and self.in_flight[platform] > cap:
            await self.canned[platform]["throttled"]()(scope, receive, send)
            return
        spec = self.faults.specs.get(platform)
        if spec is not None:
            rng = self.faults.roll(platform)
            if spec.latency_ms:
                await asyncio.sleep(spec.latency_ms / 1000)
            draw = rng.random()
            if draw < spec.drop_rate:
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    transport.abort()
                    await asyncio.sleep(0)  # let the server see the disconnect before the app returns
                    return
            draw -= spec.drop_rate
            if 0 <= draw < spec.error_rate:
                await self.canned[platform]["server_error"]()(scope, receive, send)
                return
            draw -= spec.error_rate
            if 0 <= draw < spec.burst_429:
                await self.canned[platform]["throttled"]()(scope, receive, send)
                return
        await self.app(scope, receive, send)
