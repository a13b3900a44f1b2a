"""Sync benchmark: Lifeline's run_sync against drt-core, pushing the same audience to the same sandbox.

    python benchmarks/bench_sync.py [--rows 1000000] [--limited-rows 30000] [--memory-rows 10000000]
                                    [--repeats 3] [--quick] [--only throughput,limited,memory]

Sections (every sync runs in its own process, measured by wall time and peak RSS from wait4;
the sandbox runs in a process of its own behind a request counter, benchmarks/sync_children.py):
  throughput  rate limits off. A fresh sandbox per tool and repeat; the initial sync of --rows
              members, then a 1% change (a third each removed, updated, added) synced again.
              Lifeline: run_sync with its Klaviyo destination (bulk-import jobs into a list,
              client rate limits off). drt-core: its rest_api destination POSTing the same
              bulk-import bodies to the same endpoint (benchmarks/drt_runner.py says why that is the
              fairest like-for-like choice); from DuckDB drt can only resend everything. Tools
              alternate order between repeats; medians with min/max. Target: >= 3x drt.
  limited     the sandbox with its documented Klaviyo limits (bulk-import class M: 10/s, 150/min)
              and Lifeline's client honouring them, --limited-rows members. Share of the allowed
              rate = the fewest seconds the server's fixed windows allow for the calls made, over
              the seconds taken. Destination contents are checked against the audience.
              Target: >= 90%, zero lost rows.
  limited_remove  call-bound, limits on: --removes of --remove-rows members leave the audience and
              one sync removes them (DELETE list relationships, 1,000 ids a call, after GET
              /api/profiles lookups, 100 a call). Share = the seconds the documented fixed windows
              need for the same calls in the same order, over the seconds taken; 429s; lost rows.
              Not in the default --only (about 5 minutes at 300k removals).
  memory      peak RSS of a run_sync of --memory-rows members to the file destination (CSV; the
              sandbox's SQLite list store would take many minutes to hold 10M). Target: < 1 GB. The
              sync is stopped after --memory-timeout seconds; its peak RSS so far is still reported.
Writes benchmarks/results_sync.json and appends a section to benchmarks/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import drt_runner  # noqa: E402
from benchmarks.rate_windows import DOCUMENTED_TIERS, busiest_window, fixed_window_schedule, klaviyo_tier  # noqa: E402
from benchmarks.report import append_markdown, run_measured, spread  # noqa: E402
from benchmarks.synthetic_audience import (AUDIENCE, CHANNEL, Change, apply_change, change_for,  # noqa: E402
                                           create_audience, member_number, synced_keys)
from syncs.config import Destination, Source, SyncConfig  # noqa: E402
from syncs.warehouse import Warehouse  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results_sync.json"
TOKEN = "bench-token"
KLAVIYO_M = ((10, 1.0), (150, 60.0))  # the sandbox's klaviyo:M class (syncs/sandbox/limits.py)
LIFELINE_LIST = "lifeline_bench"
DRT_LIST = "drt_bench"


# -- processes -------------------------------------------------------------------------------
class Sandbox:
    """The sandbox in its own process, fresh state, behind a request counter."""

    def __init__(self, state_dir: Path, rate_limits: bool):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.state_dir = state_dir
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.sync_children", "serve", str(self.port),
                                      str(state_dir), TOKEN, "limits" if rate_limits else "nolimits"],
                                     cwd=ROOT, env=dict(os.environ, LIFELINE_SANDBOX_FAULTS=""))
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.base_url}/_sandbox/health", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the sandbox process did not start; run "
                                       "`python -m benchmarks.sync_children serve ...` to see why")
                time.sleep(0.1)

    def counts(self) -> dict:
        return requests.get(f"{self.base_url}/_bench/counts", timeout=10).json()

    def import_seconds(self) -> dict:
        """The sandbox's side of the bulk-import calls so far: `server_s` sums the seconds each call
        spent in the server (for calls made one at a time, the sandbox's import work), `busy_s` is
        the time at least one was open, `calls` how many."""
        calls = [(start, start + took) for start, name, status, took in
                 requests.get(f"{self.base_url}/_bench/calls", timeout=30).json()
                 if name == "POST klaviyo:bulk-import-create" and status == 202]
        busy, reach = 0.0, float("-inf")
        for start, end in sorted(calls):
            busy += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        return {"calls": len(calls), "server_s": round(sum(e - s for s, e in calls), 2), "busy_s": round(busy, 2)}

    def create_list(self, name: str) -> str:
        response = requests.post(f"{self.base_url}/klaviyo/api/lists", timeout=10, json={
            "data": {"type": "list", "attributes": {"name": name}}},
            headers={"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15",
                     "Content-Type": "application/vnd.api+json"})
        response.raise_for_status()
        return response.json()["data"]["id"]

    def list_keys(self, list_name: str) -> set[str]:
        """external_id of every member of the named list, read from the sandbox's store (read-only)."""
        return list_keys(self.state_dir, list_name)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def klaviyo_sync(base_url: str, rate_limits: bool) -> SyncConfig:
    return SyncConfig(name="bench_klaviyo", source=Source(audience=AUDIENCE, channel=CHANNEL),
                      destination=Destination(type="klaviyo", base_url=f"{base_url}/klaviyo", list_name=LIFELINE_LIST,
                                              api_key_env="BENCH_KLAVIYO_KEY", client_rate_limits=rate_limits))


def run_lifeline(db: Path, sync: SyncConfig, timeout_s: float = 3600, memory_limit: str = "",
                 aligned: bool = False) -> dict:
    env = dict(os.environ, BENCH_KLAVIYO_KEY=TOKEN)
    measured = run_measured([sys.executable, "-m", "benchmarks.sync_children", "lifeline", str(db),
                             sync.model_dump_json(), memory_limit, "aligned" if aligned else ""],
                            env=env, cwd=ROOT, timeout_s=timeout_s)
    if measured.timed_out:
        return {"seconds": round(measured.seconds, 2), "peak_rss_mb": round(measured.peak_rss_mb),
                "result": None, "timed_out": True}
    lines = [line for line in measured.output.splitlines() if line.startswith("{")]
    if measured.returncode != 0 or not lines:
        raise RuntimeError(f"the Lifeline sync process failed ({measured.returncode}): {measured.output[-2000:]}")
    result = json.loads(lines[-1])
    if result["status"] != "success":
        raise RuntimeError(f"the Lifeline sync did not succeed: {result}")
    return {"seconds": round(measured.seconds, 2), "peak_rss_mb": round(measured.peak_rss_mb), "result": result}


def audience_db(path: Path, rows: int) -> None:
    engine = Warehouse(kind="duckdb", duckdb_path=path).engine()
    with engine.connect() as conn:
        create_audience(conn, rows)
    engine.dispose()


def change_db(path: Path, rows: int, change: Change) -> None:
    engine = Warehouse(kind="duckdb", duckdb_path=path).engine()
    with engine.connect() as conn:
        apply_change(conn, rows, change)
    engine.dispose()


def synced_audience_keys(path: Path) -> set[str]:
    """The keys the audience in the DuckDB file at `path` should have at the destination."""
    engine = Warehouse(kind="duckdb", duckdb_path=path).engine()
    with engine.connect() as conn:
        keys = synced_keys(conn)
    engine.dispose()
    return keys


def list_keys(state_dir: Path, list_name: str) -> set[str]:
    """external_id of every member of the named Klaviyo list in a sandbox's store (read-only)."""
    db = sqlite3.connect(f"file:{state_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        return {k for (k,) in db.execute(
            "select p.external_id from kl_list_members m join kl_lists l on l.id = m.list_id "
            "join kl_profiles p on p.id = m.profile_id where l.name = ?", (list_name,))}
    finally:
        db.close()


def in_child(*args: str) -> str:
    """`python -m benchmarks.sync_children ARGS`: its standard output. The throughput section's large
    inputs (the audience, the change, the keys compared at the end) are made in children, so this
    process stays small: a measured child's peak RSS from wait4 is at least this process's RSS when
    it started the child (report.run_measured); built here, the 1M audience left it at 467 MB, the
    figure then reported as drt's peak."""
    done = run_measured([sys.executable, "-m", "benchmarks.sync_children", *args], env=dict(os.environ), cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"sync_children {args[0]} failed ({done.returncode}): {done.output[-2000:]}")
    return done.output


def check(expected: set[str], held: set[str]) -> dict:
    return {"expected": len(expected), "held": len(held), "lost": len(expected - held), "stale": len(held - expected)}


# -- sections --------------------------------------------------------------------------------
def one_tool(tool: str, base_db: Path, tmp: Path, rows: int, change: Change) -> dict:
    db = tmp / f"{tool}.duckdb"
    shutil.copy(base_db, db)
    sandbox = Sandbox(tmp / f"sandbox_{tool}", rate_limits=False)
    try:
        if tool == "lifeline":
            sync = klaviyo_sync(sandbox.base_url, rate_limits=False)
            initial = run_lifeline(db, sync)
        else:
            project = tmp / "drt_project"
            drt_runner.write_project(project, db, sandbox.base_url, TOKEN, sandbox.create_list(DRT_LIST))
            m = drt_runner.run_drt(project)
            initial = {"seconds": round(m.seconds, 2), "peak_rss_mb": round(m.peak_rss_mb)}
        after_initial = sandbox.counts()["requests"]
        initial["sandbox_import"] = sandbox.import_seconds()
        in_child("change", str(db), str(rows), *(str(n) for n in (change.removes, change.updates, change.adds)))
        if tool == "lifeline":
            changed = run_lifeline(db, sync)
        else:
            m = drt_runner.run_drt(project)
            changed = {"seconds": round(m.seconds, 2), "peak_rss_mb": round(m.peak_rss_mb)}
        destination = json.loads(in_child("check", str(db), str(sandbox.state_dir),
                                          LIFELINE_LIST if tool == "lifeline" else DRT_LIST).splitlines()[-1])
        return {"initial": initial, "change": changed, "requests_initial": after_initial,
                "requests_total": sandbox.counts()["requests"], "destination": destination}
    finally:
        sandbox.stop()
        db.unlink(missing_ok=True)
        shutil.rmtree(tmp / f"sandbox_{tool}", ignore_errors=True)


def bench_throughput(rows: int, repeats: int, tmp: Path) -> dict:
    base = tmp / "base.duckdb"
    in_child("audience", str(base), str(rows))
    change = change_for(rows)
    runs: dict[str, list[dict]] = {"lifeline": [], "drt": []}
    for r in range(repeats):
        for tool in (("lifeline", "drt") if r % 2 == 0 else ("drt", "lifeline")):
            runs[tool].append(one_tool(tool, base, tmp, rows, change))
    base.unlink()
    summary: dict = {"rows": rows, "change": {"removes": change.removes, "updates": change.updates,
                                              "adds": change.adds}, "repeats": repeats, "runs": runs}
    for tool, tool_runs in runs.items():
        summary[tool] = {
            "initial_records_per_s": spread([rows / t["initial"]["seconds"] for t in tool_runs]),
            "initial_s": spread([t["initial"]["seconds"] for t in tool_runs]),
            "change_s": spread([t["change"]["seconds"] for t in tool_runs]),
            # records that had to change, per second of the run that brought the destination up to date
            "change_records_per_s": spread([change.total / t["change"]["seconds"] for t in tool_runs]),
            "peak_rss_mb": max(max(t["initial"]["peak_rss_mb"], t["change"]["peak_rss_mb"]) for t in tool_runs),
            "lost_after_change": max(t["destination"]["lost"] for t in tool_runs),
            "stale_after_change": max(t["destination"]["stale"] for t in tool_runs),
        }
    # Ratios per repeat (the two tools ran back to back), then their median: robust to drift in load.
    summary["ratio_initial"] = spread([d["initial"]["seconds"] / l["initial"]["seconds"]
                                       for l, d in zip(runs["lifeline"], runs["drt"])])
    summary["ratio_change"] = spread([d["change"]["seconds"] / l["change"]["seconds"]
                                      for l, d in zip(runs["lifeline"], runs["drt"])])
    summary["target_ratio"] = 3.0
    # drt sends one job at a time, so its calls' server seconds are the sandbox's import work for the
    # audience. A tool whose own cost were zero still waits for that work: drt's initial seconds
    # over it are the best ratio any client can reach against this sandbox.
    summary["ratio_bound_initial"] = spread([d["initial"]["seconds"] / d["initial"]["sandbox_import"]["server_s"]
                                             for d in runs["drt"] if d["initial"]["sandbox_import"]["server_s"]])
    return summary


def bench_limited(rows: int, tmp: Path) -> dict:
    db = tmp / "limited.duckdb"
    audience_db(db, rows)
    sandbox = Sandbox(tmp / "sandbox_limited", rate_limits=True)
    try:
        engine = Warehouse(kind="duckdb", duckdb_path=db).engine()
        with engine.connect() as conn:
            expected = synced_keys(conn)
        engine.dispose()
        run = run_lifeline(db, klaviyo_sync(sandbox.base_url, rate_limits=True))
        counts = sandbox.counts()
        held = sandbox.list_keys(LIFELINE_LIST)
    finally:
        sandbox.stop()
        shutil.rmtree(tmp / "sandbox_limited", ignore_errors=True)
        db.unlink(missing_ok=True)
    requests_ = counts["requests"]
    m_calls = sum(n for k, n in requests_.items() if k.startswith("klaviyo:bulk-import") and not k.endswith(" 429"))
    throttled = sum(n for k, n in requests_.items() if k.endswith(" 429"))
    busy = counts["last"] - counts["first"]
    allowed = fixed_window_schedule(["M"] * m_calls, counts["first"], {"M": KLAVIYO_M})
    return {"rows": rows, "sync": run, "requests": requests_, "class_m_calls": m_calls, "throttled_429": throttled,
            "seconds_first_to_last_call": round(busy, 2), "fewest_seconds_allowed": round(allowed, 2),
            "share_of_allowed_rate": round(allowed / busy, 3) if busy else None,
            "calls_per_s": round(m_calls / busy, 3) if busy else None, "steady_limit_calls_per_s": 150 / 60,
            "destination": check(expected, held), "target_share": 0.9}


def store_klaviyo_ids(db: Path, sandbox: "Sandbox") -> int:
    """Record each synced member's Klaviyo profile id in lifeline_state.sync_state, as a sync that
    had read them back would have: removals then need no GET /api/profiles lookups."""
    import pyarrow as pa

    store = sqlite3.connect(f"file:{sandbox.state_dir / 'sandbox.sqlite3'}?mode=ro", uri=True)
    try:
        pairs = store.execute("select external_id, id from kl_profiles where external_id is not null").fetchall()
    finally:
        store.close()
    ids = pa.table({"key": [k for k, _ in pairs], "destination_id": [v for _, v in pairs]})
    con = duckdb.connect(str(db))
    try:
        con.register("klaviyo_ids", ids)
        con.execute("update lifeline_state.sync_state s set destination_id = i.destination_id "
                    "from klaviyo_ids i where s.key = i.key")
        return con.execute("select count(*) from lifeline_state.sync_state where destination_id is not null").fetchone()[0]
    finally:
        con.close()


def bench_limited_remove(rows: int, removes: int, tmp: Path, ids_known: bool = False, aligned: bool = False) -> dict:
    """Call-bound: `removes` members leave the audience and one rate-limited sync removes them
    (DELETE /api/lists/{id}/relationships/profiles, 1,000 ids a call, after looking their Klaviyo
    ids up 100 a call). The sandbox enforces its limits; the client honours the documented ones.
    Share = the seconds the documented fixed windows need for the same calls in the same order,
    over the seconds the sync took from its first to its last call. With `ids_known` the state
    already holds every member's Klaviyo id, so the removal is DELETE calls alone (class M). With
    `aligned` the client's limiters count clock-aligned fixed windows (an experiment, see
    benchmarks/sync_children.py)."""
    db = tmp / "limited_remove.duckdb"
    audience_db(db, rows)
    sandbox = Sandbox(tmp / "sandbox_limited_remove", rate_limits=True)
    try:
        sync = klaviyo_sync(sandbox.base_url, rate_limits=True)
        initial = run_lifeline(db, sync)
        if ids_known:
            initial["ids_stored"] = store_klaviyo_ids(db, sandbox)
        engine = Warehouse(kind="duckdb", duckdb_path=db).engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f"delete from audience_members where audience = '{AUDIENCE}' and not is_holdout "
                                 f"and {member_number()} <= {removes}"))
            conn.commit()
            expected = synced_keys(conn)
        engine.dispose()
        requests.post(f"{sandbox.base_url}/_bench/reset", timeout=10).raise_for_status()
        load_start = os.getloadavg()[0]
        run = run_lifeline(db, sync, aligned=aligned)
        calls = requests.get(f"{sandbox.base_url}/_bench/calls", timeout=30).json()
        held = sandbox.list_keys(LIFELINE_LIST)
    finally:
        sandbox.stop()
        shutil.rmtree(tmp / "sandbox_limited_remove", ignore_errors=True)
        db.unlink(missing_ok=True)
    answered = [c for c in calls if c[2] != 429]
    throttled = len(calls) - len(answered)
    tiers = [klaviyo_tier(c[1]) for c in answered]
    elapsed = calls[-1][0] - calls[0][0]
    allowed = fixed_window_schedule(tiers, calls[0][0], DOCUMENTED_TIERS)
    by_call: dict[str, int] = {}
    for c in answered:
        by_call[c[1]] = by_call.get(c[1], 0) + 1
    # Could the client's own (rolling) limiter have made any call wait? Only if some rolling window
    # of a tier held as many calls as its limit.
    busiest = {tier: {f"{w:g}s": {"calls": busiest_window([c[0] for c, t in zip(answered, tiers) if t == tier], w),
                                   "limit": limit} for limit, w in wins}
               for tier, wins in DOCUMENTED_TIERS.items()}
    server_s = sum(c[3] for c in answered) if answered and len(answered[0]) > 3 else None
    binding = max(DOCUMENTED_TIERS, key=lambda t: tiers.count(t) / DOCUMENTED_TIERS[t][-1][0])
    steady_limit, steady_s = DOCUMENTED_TIERS[binding][-1]
    return {"rows": rows, "removes": removes, "initial_sync": initial, "sync": run, "calls": by_call,
            "calls_by_tier": {t: tiers.count(t) for t in DOCUMENTED_TIERS}, "throttled_429": throttled,
            "seconds_first_to_last_call": round(elapsed, 2), "fewest_seconds_allowed": round(allowed, 2),
            "share_of_allowed_rate": round(allowed / elapsed, 3) if elapsed else None,
            "binding_tier": binding, "busiest_windows": busiest,
            "server_s": round(server_s, 2) if server_s is not None else None,
            "mean_call_s": round(elapsed / max(1, len(answered) - 1), 4),
            "ids_known": ids_known, "client_windows": "clock-aligned fixed" if aligned else "rolling",
            # the binding tier's calls against its documented steady rate over the same seconds
            "binding_calls_per_min": round(tiers.count(binding) / elapsed * 60, 1) if elapsed else None,
            "binding_steady_per_min": steady_limit * 60 / steady_s,
            "load_average_at_start": round(load_start, 2), "load_average_at_end": round(os.getloadavg()[0], 2),
            "destination": check(expected, held), "target_share": 0.9}


def bench_memory(rows: int, tmp: Path, timeout_s: float, memory_limit: str = "") -> dict:
    db = tmp / "memory.duckdb"
    started = time.perf_counter()
    # In a child: built here, the audience left this process at ~3 GB of RSS at 10M members, which
    # the sync's child then reported as its own peak (see run_measured).
    in_child("audience", str(db), str(rows))
    setup_s = time.perf_counter() - started
    out = tmp / "memory_out"
    sync = SyncConfig(name="bench_file", source=Source(audience=AUDIENCE, channel=CHANNEL),
                      destination=Destination(type="file", base_url=str(out), format="csv"))
    try:
        run = run_lifeline(db, sync, timeout_s, memory_limit)
        con = duckdb.connect()
        total, distinct = con.execute(f"select count(*), count(distinct key) from read_csv('{out}/*.csv', "
                                      "all_varchar=true)").fetchone() if any(out.glob("*.csv")) else (0, 0)
        con.close()
    finally:
        shutil.rmtree(out, ignore_errors=True)
        db.unlink(missing_ok=True)
    # A run stopped at the time limit still reports its peak RSS so far and the rows it had written.
    return {"rows": rows, "destination": "file (csv)", "duckdb_memory_limit": memory_limit or "default (80% of RAM)",
            "setup_s": round(setup_s, 1), "sync": run,
            "completed": not run.get("timed_out", False), "time_limit_s": timeout_s,
            "records_per_s": round(total / run["seconds"]), "rows_written": total, "distinct_keys": distinct,
            "target_peak_rss_mb": 1024,
            "meets_target": run["peak_rss_mb"] < 1024 if not run.get("timed_out") else None}


# -- report ----------------------------------------------------------------------------------
def sync_table(results: dict) -> list[str]:
    lines: list[str] = []
    t = results.get("throughput")
    if t:
        lines += [f"Throughput, rate limits off, {t['rows']:,} members, {t['repeats']} repeats (median, min-max). "
                  f"drt-core {results['versions'].get('drt-core')}: rest_api destination, same bulk-import "
                  "bodies to the same sandbox endpoint; from DuckDB drt resends everything for a change.", "",
                  "| tool | initial records/s | initial s | 1% change s | changed records/s | peak RSS MB | "
                  "lost / stale rows after change |", "|---|---|---|---|---|---|---|"]
        for tool in ("lifeline", "drt"):
            s = t[tool]
            lines.append(f"| {tool} | {s['initial_records_per_s']['median']:,.0f} "
                         f"({s['initial_records_per_s']['min']:,.0f}-{s['initial_records_per_s']['max']:,.0f}) | "
                         f"{s['initial_s']['median']} | {s['change_s']['median']} | "
                         f"{s['change_records_per_s']['median']:,.0f} | {s['peak_rss_mb']} | "
                         f"{s['lost_after_change']} / {s['stale_after_change']} |")
        bound = t.get("ratio_bound_initial")
        imports = {tool: [r["initial"].get("sandbox_import") for r in t["runs"][tool]] for tool in ("lifeline", "drt")}
        if bound and all(all(imports[tool]) for tool in imports):
            lines += ["", "The sandbox's import work during the initial syncs (median over repeats): "
                      + "; ".join(f"{tool} {statistics.median(i['server_s'] for i in imports[tool])} s in calls, "
                                  f"{statistics.median(i['busy_s'] for i in imports[tool])} s with a call open"
                                  for tool in imports)
                      + f". drt's initial seconds over its calls' server seconds: {bound['median']}x "
                      "(the ratio a client with no cost of its own could reach against this sandbox)."]
        lines += ["", f"Lifeline / drt: initial {t['ratio_initial']['median']}x "
                  f"({t['ratio_initial']['min']}-{t['ratio_initial']['max']}), 1% change "
                  f"{t['ratio_change']['median']}x ({t['ratio_change']['min']}-{t['ratio_change']['max']}); "
                  f"target >= {t['target_ratio']:g}x.", ""]
    lim = results.get("limited")
    if lim:
        lines += [f"Rate limits on ({lim['rows']:,} members, Klaviyo class M 10/s + 150/min): "
                  f"{lim['class_m_calls']} calls in {lim['seconds_first_to_last_call']} s, the fixed windows allow "
                  f"{lim['fewest_seconds_allowed']} s: {lim['share_of_allowed_rate']:.1%} of the allowed rate "
                  f"(target >= 90%); {lim['throttled_429']} answers 429; lost rows {lim['destination']['lost']}, "
                  f"stale {lim['destination']['stale']}.", ""]
    for rem in (results.get(k) for k in ("limited_remove", "limited_remove_ids", "limited_remove_aligned",
                                         "limited_remove_ids_aligned")):
        if not rem:
            continue
        lookups = ", their Klaviyo ids already in the state" if rem.get("ids_known") else \
            ", after GET /api/profiles lookups, 100 ids a call"
        lines += [f"Rate limits on, call-bound ({rem['removes']:,} of {rem['rows']:,} members removed: DELETE list "
                  f"relationships, 1,000 ids a call{lookups}): "
                  f"{sum(rem['calls'].values())} calls ({rem['calls_by_tier']}) in {rem['seconds_first_to_last_call']} s; "
                  f"client windows {rem.get('client_windows', 'rolling')}; "
                  f"the documented fixed windows allow them in {rem['fewest_seconds_allowed']} s: "
                  f"**{rem['share_of_allowed_rate']:.1%}** of the allowed rate (target >= 90%); binding tier "
                  f"{rem['binding_tier']}: {rem['binding_calls_per_min']}/min of {rem['binding_steady_per_min']:g}/min; "
                  f"{rem['throttled_429']} answers 429; lost rows {rem['destination']['lost']}, "
                  f"stale {rem['destination']['stale']}.", ""]
    for key in sorted(k for k in results if k.startswith("memory")):
        mem = results[key]
        stopped = "" if mem.get("completed", True) else f" (stopped at the {mem['time_limit_s']:g} s limit)"
        lines += [f"Memory (DuckDB memory_limit {mem.get('duckdb_memory_limit', 'default')}): run_sync of "
                  f"{mem['rows']:,} members to the {mem['destination']} destination: peak RSS "
                  f"{mem['sync']['peak_rss_mb']} MB (target < 1024 MB), {mem['sync']['seconds']} s{stopped} "
                  f"({mem['records_per_s']:,} records/s), {mem['distinct_keys']:,} distinct keys written.", ""]
    return lines


def run(rows: int = 1_000_000, limited_rows: int = 30_000, memory_rows: int = 10_000_000, repeats: int = 3,
        only: tuple[str, ...] = ("throughput", "limited", "memory"), memory_timeout_s: float = 300,
        memory_limit: str = "", work: Path | None = None, remove_rows: int = 310_000, removes: int = 300_000,
        out: Path = RESULTS_JSON, markdown: Path | None = None) -> dict:
    from importlib import metadata

    # Sections not run this time keep their figures from `out` (run them one at a time if you like).
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    results.update({"versions": {p: metadata.version(p) for p in ("drt-core", "duckdb", "requests", "httpx")},
                    "cpus": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2)})
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        if "throughput" in only:
            results["throughput"] = bench_throughput(rows, repeats, Path(tmp))
        if "limited" in only:
            results["limited"] = bench_limited(limited_rows, Path(tmp))
        if "limited_remove" in only:
            results["limited_remove"] = bench_limited_remove(remove_rows, removes, Path(tmp))
        for key, ids_known, aligned in (("limited_remove_ids", True, False), ("limited_remove_aligned", False, True),
                                        ("limited_remove_ids_aligned", True, True)):
            if key in only:
                results[key] = bench_limited_remove(remove_rows, removes, Path(tmp), ids_known=ids_known, aligned=aligned)
        if "memory" in only:
            key = f"memory_capped_{memory_limit}" if memory_limit else "memory"
            results[key] = bench_memory(memory_rows, Path(tmp), memory_timeout_s, memory_limit)
    results["load_average_at_end"] = round(os.getloadavg()[0], 2)
    out.write_text(json.dumps(results, indent=2) + "\n")
    append_markdown(markdown, "Sync: Lifeline vs drt-core, rate limits, memory", sync_table(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="members for the throughput comparison")
    parser.add_argument("--limited-rows", type=int, default=30_000, help="members for the rate-limited run")
    parser.add_argument("--memory-rows", type=int, default=10_000_000, help="members for the peak-RSS run")
    parser.add_argument("--memory-timeout", type=float, default=300,
                        help="seconds before the peak-RSS sync is stopped (its peak so far is reported)")
    parser.add_argument("--duckdb-memory-limit", default="",
                        help="experiment: cap DuckDB's memory in the peak-RSS sync (e.g. 512MB); reported apart")
    parser.add_argument("--remove-rows", type=int, default=310_000,
                        help="members synced before the call-bound removal run (limited_remove)")
    parser.add_argument("--removes", type=int, default=300_000, help="members the limited_remove run removes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="throughput,limited,memory",
                        help="sections to run; the others keep their figures from --out")
    parser.add_argument("--quick", action="store_true", help="20k / 2k / 100k members, 2 repeats")
    parser.add_argument("--out", type=Path, default=RESULTS_JSON)
    parser.add_argument("--markdown", default=str(ROOT / "benchmarks" / "results.md"),
                        help="file to append the section to ('' skips)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.limited_rows, args.memory_rows, args.repeats = 20_000, 2_000, 100_000, 2
    results = run(args.rows, args.limited_rows, args.memory_rows, args.repeats, tuple(args.only.split(",")),
                  args.memory_timeout, args.duckdb_memory_limit, out=args.out, markdown=Path(args.markdown) if args.markdown else None,
                  remove_rows=args.remove_rows, removes=args.removes)
    print("\n".join(sync_table(results)))


if __name__ == "__main__":
    main()
