"""Processes started by benchmarks/bench_sync.py, each measured on its own (wall time, peak RSS):

    python -m benchmarks.sync_children serve PORT STATE_DIR TOKEN (limits|nolimits)
        the sandbox (syncs.sandbox.server.create_app) behind a request counter; GET /_bench/counts
        answers {"requests": {"<class> <status>": n}, "first": t, "last": t}: counts since start, and
        the start of the first and the end of the last platform call (not /_sandbox control calls);
        GET /_bench/calls lists every platform call as [start, "<METHOD> <path class>", status,
        seconds in the server] in order of arrival; POST /_bench/reset forgets everything counted so far
    python -m benchmarks.sync_children lifeline DUCKDB_PATH CONFIG_JSON [DUCKDB_MEMORY_LIMIT] [aligned]
        one run_sync of the SyncConfig in CONFIG_JSON; prints the SyncResult as one JSON line.
        `aligned` (experiment): the Klaviyo client's limiters count clock-aligned fixed windows
        (syncs.http.limiter(aligned=True)) instead of rolling ones
    python -m benchmarks.sync_children audience DUCKDB_PATH ROWS
        the synthetic audience of ROWS members (bench_sync.audience_db), built here so the measuring
        process stays small: a child's peak RSS from wait4 is at least its parent's RSS when it was
        started (Linux keeps the larger across exec)
    python -m benchmarks.sync_children change DUCKDB_PATH ROWS REMOVES UPDATES ADDS
        that change (synthetic_audience.Change) applied to the audience of ROWS members
    python -m benchmarks.sync_children check DUCKDB_PATH SANDBOX_STATE_DIR LIST_NAME
        the audience's synced keys against the sandbox list's members: one JSON line of expected,
        held, lost and stale
"""
from __future__ import annotations

import gc
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class RequestCounter:
    """ASGI wrapper counting requests by (path class, status) and timing the first and last platform call."""

    def __init__(self, app: Any):
        self.app = app
        self.counts: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None
        self.calls: list[tuple[float, str, int, float]] = []

    def reset(self) -> None:
        self.counts.clear()
        self.calls.clear()
        self.first = self.last = None

    @staticmethod
    def path_class(path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["klaviyo", "api", "profile-bulk-import-jobs"]:
            return "klaviyo:bulk-import-create" if len(parts) == 3 else "klaviyo:bulk-import-read"
        if parts[:3] == ["klaviyo", "api", "lists"] and parts[-2:] == ["relationships", "profiles"]:
            return "klaviyo:list-relationships"
        return "/".join(parts[:3])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/_bench/"):
            if scope["path"] == "/_bench/reset":
                self.reset()
            payload: Any = self.calls if scope["path"] == "/_bench/calls" else {
                "requests": dict(self.counts), "first": self.first, "last": self.last}
            body = json.dumps(payload).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        platform_call = not scope["path"].startswith("/_sandbox")
        started = time.time()
        if platform_call and self.first is None:
            self.first = started
        status = [0]

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive, counting_send)
        if platform_call:
            self.last = time.time()
            self.calls.append((started, f"{scope['method']} {self.path_class(scope['path'])}", status[0],
                               self.last - started))
        self.counts[f"{self.path_class(scope['path'])} {status[0]}"] += 1


def serve(port: int, state_dir: Path, token: str, rate_limits: bool) -> None:
    import uvicorn

    from syncs.sandbox.server import create_app

    app = create_app(state_dir, token=token, rate_limits=rate_limits, reset=True)
    gc.set_threshold(50_000, 20, 100)  # as syncs.sandbox.server.serve does for a serving process
    gc.freeze()
    uvicorn.run(RequestCounter(app), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="on")


def lifeline(duckdb_path: Path, config_json: str, memory_limit: str = "", aligned: str = "") -> None:
    """`memory_limit` (e.g. '512MB') caps DuckDB's buffer pool for this run, an experiment: run_sync
    itself opens the warehouse without a limit (DuckDB's default is 80% of RAM)."""
    from syncs.config import SyncConfig
    from syncs.engine import no_collections_at_exit, run_sync
    from syncs.warehouse import Warehouse

    no_collections_at_exit()  # as `lifeline sync` does

    class CappedWarehouse(Warehouse):
        def engine(self, **kwargs: Any):
            config = {"memory_limit": memory_limit, "temp_directory": str(duckdb_path) + ".tmp"}
            return super().engine(connect_args={"config": config}, **kwargs)

    if aligned == "aligned":  # experiment: what limiter(..., aligned=True) in the Klaviyo client would give
        import functools

        import syncs.destinations.klaviyo as klaviyo
        from syncs.http import limiter

        klaviyo.limiter = functools.partial(limiter, aligned=True)
    sync = SyncConfig.model_validate_json(config_json)
    warehouse = (CappedWarehouse if memory_limit else Warehouse)(kind="duckdb", duckdb_path=duckdb_path)
    result = run_sync(warehouse, sync, force=True, progress=False)
    print(json.dumps({"status": result.status, "adds": result.adds, "updates": result.updates,
                      "removes": result.removes, "rejections": result.rejections, "retries": result.retries,
                      "duration_s": round(result.duration_s, 3), "message": result.message[:500]}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"] and len(argv) == 5:
        serve(int(argv[1]), Path(argv[2]), argv[3], argv[4] == "limits")
    elif argv[:1] == ["lifeline"] and len(argv) in (3, 4, 5):
        lifeline(Path(argv[1]), argv[2], *argv[3:])
    elif argv[:1] == ["audience"] and len(argv) == 3:
        from benchmarks.bench_sync import audience_db

        audience_db(Path(argv[1]), int(argv[2]))
    elif argv[:1] == ["change"] and len(argv) == 6:
        from benchmarks.bench_sync import Change, change_db

        change_db(Path(argv[1]), int(argv[2]), Change(*map(int, argv[3:])))
    elif argv[:1] == ["check"] and len(argv) == 4:
        from benchmarks.bench_sync import check, list_keys, synced_audience_keys

        print(json.dumps(check(synced_audience_keys(Path(argv[1])), list_keys(Path(argv[2]), argv[3]))))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
