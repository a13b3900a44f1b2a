"""The sandbox's own endpoints under `/_sandbox` (no auth: the server only listens on loopback)."""
from __future__ import annotations

import json
from types import ModuleType

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from syncs.sandbox import members
from syncs.sandbox.common import Context
from syncs.sandbox.faults import FaultState, validate_faults
from syncs.sandbox.limits import windows


def routes(ctx: Context, faults: FaultState, platforms: dict[str, ModuleType],
           extra: list[Route] | None = None) -> Mount:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "platforms": sorted(platforms), "rate_limits": ctx.rate_limits})

    async def summary(request: Request) -> JSONResponse:
        with ctx.store.tx() as db:
            return JSONResponse({name: module.summary(db) for name, module in platforms.items()})

    async def reset(request: Request) -> JSONResponse:
        ctx.store.reset()
        return JSONResponse({"reset": True})

    async def get_faults(request: Request) -> JSONResponse:
        return JSONResponse({k: v.model_dump() for k, v in faults.specs.items()})

    async def set_faults(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object {platform: {error_rate: ..., ...}}")
            seed = body.pop("fault_seed", None)
            specs = validate_faults(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        faults.set(specs, seed=None if seed is None else int(seed))
        return await get_faults(request)

    async def set_limits(request: Request) -> JSONResponse:
        body = json.loads(await request.body() or b"{}")
        if "enabled" in body:
            ctx.limiter.enabled = bool(body["enabled"])
        for name, pairs in (body.get("overrides") or {}).items():
            if name not in ctx.limiter.classes:
                return JSONResponse({"error": f"unknown rate-limit class {name!r}",
                                     "known": sorted(ctx.limiter.classes)}, status_code=400)
            ctx.limiter.override(name, windows(*[tuple(p) for p in pairs]))
        return JSONResponse({"enabled": ctx.limiter.enabled})

    async def audiences(request: Request) -> JSONResponse:
        platform = request.path_params["platform"]
        if platform not in ("meta", "google", "tiktok", "mailchimp", "braze"):
            return JSONResponse({"error": f"no audiences for {platform!r}; use meta, google, tiktok, mailchimp "
                                          f"or braze"}, status_code=404)
        limit = int(request.query_params.get("limit", "100"))
        with ctx.store.tx() as db:
            info = members.audiences(db, platform)
            counts = members.counts(db, platform)
            out = {a: {**info.get(a, {}), "count": counts.get(a, 0),
                       "members": [k for k, _ in members.page(db, platform, a, 0, limit)]}
                   for a in sorted(set(info) | set(counts))}
        return JSONResponse({"audiences": out})

    table: list[Route] = [
        Route("/{platform}/audiences", audiences, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/summary", summary, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", get_faults, methods=["GET"]),
        Route("/faults", set_faults, methods=["POST"]),
        Route("/limits", set_limits, methods=["POST"]),
    ]
    return Mount("/_sandbox", routes=table + (extra or []))

