"""Runs syncs: lock -> diff in the warehouse -> safety check -> batches within the destination's
limits -> send -> per-row results -> state committed for acknowledged rows only -> run record.

A crash at any point is safe: rows are marked synced only after the destination acknowledged
them, and list membership and profile imports are idempotent, so a rerun re-sends at most the
unacknowledged batch and converges to exactly the audience.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from tqdm import tqdm

from syncs.config import MissingSecret, SyncConfig, environment, load_syncs
from syncs.destinations.base import DestinationError
from syncs.destinations.registry import UnsupportedDestination, limits, open_client
from syncs.plan import Plan, SourceMissing, build_diff, check_source, estimate, pages
from syncs.state import (SyncLocked, acquire_lock, ensure_state, mark_removed, mark_synced, now, record_rejections,
                         record_run, release_lock)
from syncs.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    name: str
    status: str  # success | failed | blocked | dry_run
    adds: int = 0
    updates: int = 0
    removes: int = 0
    rejections: int = 0
    retries: int = 0
    duration_s: float = 0.0
    message: str = ""
    plan: Plan = field(default_factory=Plan)


SYNC_MEMORY_LIMIT = "512MB"  # DuckDB's buffer for the diff; it spills beyond (LIFELINE_SYNC_MEMORY_LIMIT)


def limit_memory(conn, env: Mapping[str, str]) -> None:
    """A sync needs little memory: cap DuckDB (default 80% of RAM) so a 10M-row diff spills instead
    of growing the process. PostgreSQL does its work in its own server process."""
    if conn.dialect.name != "duckdb":
        return
    value = env.get("LIFELINE_SYNC_MEMORY_LIMIT") or SYNC_MEMORY_LIMIT
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip(), re.IGNORECASE):
        raise ValueError(f"LIFELINE_SYNC_MEMORY_LIMIT={value!r} is not a size such as 512MB or 2GB")
    conn.exec_driver_sql(f"set memory_limit = '{value.strip()}'")


def safety_problem(sync: SyncConfig, plan: Plan) -> str | None:
    if plan.current and plan.removes > sync.safety.max_remove_share * plan.current:
        return (f"safety limit: would remove {plan.removes} of {plan.current} members "
                f"({plan.removes / plan.current:.0%} > {sync.safety.max_remove_share:.0%}); "
                f"check the audience, then rerun with --force if it is right")
    if plan.current and plan.adds > sync.safety.max_add_multiple * plan.current:
        return (f"safety limit: would add {plan.adds} to {plan.current} members "
                f"(more than {sync.safety.max_add_multiple:g}x); rerun with --force if it is right")
    return None


def run_sync(warehouse: Warehouse, sync: SyncConfig, *, dry_run: bool = False, force: bool = False,
             progress: bool = True, env: Mapping[str, str] | None = None, wait_s: float = 0.0) -> SyncResult:
    if sync.mode == "trigger":
        from syncs.trigger import run_trigger  # imported here: syncs.trigger imports this module

        return run_trigger(warehouse, sync, dry_run=dry_run, force=force, progress=progress, env=env, wait_s=wait_s)
    if sync.mode != "add_remove":
        return SyncResult(sync.name, "failed", message=f"sync {sync.name}: mode {sync.mode} is not implemented yet; "
                                                       "use mode add_remove")
    try:
        spec = limits(sync)
    except UnsupportedDestination as exc:
        return SyncResult(sync.name, "failed", message=str(exc))
    env = environment(env)
    started = time.perf_counter()
    started_at = now()
    engine = warehouse.engine()
    result = SyncResult(sync.name, "failed")
    client = None
    with engine.connect() as conn:
        limit_memory(conn, env)
        ensure_state(conn)
        try:
            acquire_lock(conn, sync.name, wait_s=wait_s)
        except SyncLocked as exc:
            return SyncResult(sync.name, "blocked", message=str(exc))
        try:
            check_source(conn, sync, warehouse.marts_schema)
            plan = build_diff(conn, sync)
            estimate(plan, spec.add_batch_size, spec.remove_batch_size, spec.calls_per_second,
                     spec.calls_per_add_batch)
            result.plan = plan
            if dry_run:
                result = SyncResult(sync.name, "dry_run", plan.adds, plan.updates, plan.removes, plan=plan,
                                    message=f"{plan.batches} batches, {plan.api_calls} API calls, "
                                            f"~{plan.seconds_at_limits}s at the documented rate limits")
                return result
            problem = None if force else safety_problem(sync, plan)
            if problem:
                result = SyncResult(sync.name, "blocked", plan=plan, message=problem)
                return result
            if not plan.adds + plan.updates + plan.removes:
                result = SyncResult(sync.name, "success", plan=plan, message="up to date: nothing to send")
                return result
            client = open_client(sync, env)
            bar = tqdm(total=plan.adds + plan.updates + plan.removes, desc=sync.name, unit="row",
                       disable=not progress)
            for batch in pages(conn, ("add", "update"), client.add_batch_size):
                results = client.add(batch)
                by_key = {r["key"]: r for r in batch}
                ok = [{"key": r.key, "row_hash": by_key[r.key]["row_hash"], "destination_id": r.destination_id}
                      for r in results if r.ok]
                bad = [{"key": r.key, "code": r.code, "message": r.message,
                        "payload_hash": by_key[r.key]["row_hash"]}
                       for r in results if not r.ok and r.code != "not_acknowledged"]
                mark_synced(conn, sync.name, ok)
                record_rejections(conn, sync.name, bad)
                conn.commit()
                for r in results:
                    if r.ok:
                        if by_key[r.key]["op"] == "add":
                            result.adds += 1
                        else:
                            result.updates += 1
                result.rejections += len(bad)
                bar.update(len(batch))
            for page in pages(conn, ("remove",), client.remove_batch_size):
                client.remove(page)
                mark_removed(conn, sync.name, [r["key"] for r in page])
                conn.commit()
                result.removes += len(page)
                bar.update(len(page))
            bar.close()
            result.status = "success"
        except (DestinationError, MissingSecret, SourceMissing) as exc:
            result.message = str(exc)
        except Exception as exc:  # recorded in sync_runs, then re-raised for the caller
            result.message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            result.retries = client.retries[0] if client else 0
            result.duration_s = time.perf_counter() - started
            conn.rollback()
            if result.status != "dry_run":
                record_run(conn, {"run_id": str(uuid.uuid4()), "sync_name": sync.name, "started_at": started_at,
                                  "finished_at": now(), "status": result.status, "adds": result.adds,
                                  "updates": result.updates, "removes": result.removes,
                                  "rejections": result.rejections, "retries": result.retries,
                                  "duration_s": result.duration_s, "message": result.message[:2000]})
            release_lock(conn, sync.name)
    engine.dispose()
    log.info("sync %s: %s +%d ~%d -%d rejected %d", sync.name, result.status, result.adds, result.updates,
             result.removes, result.rejections)
    return result


def run_syncs(warehouse: Warehouse, config_path: Path, names: list[str] | None = None, *, dry_run: bool = False,
              force: bool = False, progress: bool = True, env: Mapping[str, str] | None = None,
              wait_s: float = 0.0) -> list[SyncResult]:
    syncs = load_syncs(config_path)
    if names:
        unknown = sorted(set(names) - {s.name for s in syncs})
        if unknown:
            raise ValueError(f"no sync named {', '.join(unknown)} in {config_path} "
                             f"(have: {', '.join(s.name for s in syncs)})")
        syncs = [s for s in syncs if s.name in names]
    return [run_sync(warehouse, s, dry_run=dry_run, force=force, progress=progress, env=env, wait_s=wait_s)
            for s in syncs]


