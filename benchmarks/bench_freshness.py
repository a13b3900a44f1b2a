"""Freshness: from a new events file landing to the affected trigger audience delivered to the
sandbox, through the Dagster sensor path (sensor tick -> run request -> run of exactly the
selected assets -> sync), p50 and p95 over repeated trials.

    python benchmarks/bench_freshness.py [--people 20000] [--trials 5] [--sensor-interval 30]
                                         [--warehouse built.duckdb] [--memory-limit 10GB]

Each trial drops one events file with an add_to_cart (45 minutes before as_of) for a consenting
person not yet in cart_abandonment, and stops the clock when that person's email is a member of
the sandbox's Klaviyo `cart_abandonment` list. The file lands at a random moment (seeded) of the
sensor's tick interval and the tick is evaluated at the next interval boundary, as the Dagster
daemon would (--sensor-interval 0 evaluates it at once). Each trial records where its seconds went:
the wait for the tick, the tick itself, each step of the run (Dagster's step stats: load, dbt,
predictions, checks, sync), dbt's slowest nodes, and the delivery check.

--warehouse reuses a DuckDB file already loaded and built at as_of 2026-11-01 (e.g. the one
`benchmarks/run.py --only build` leaves in benchmarks/.data), instead of generating, loading and
building one; the trials append their events to it. Results go to benchmarks/results_freshness.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 11, 1)


def run(work: Path, people: int = 20_000, trials: int = 5, sensor_interval: float = 30,
        warehouse_path: Path | None = None, seed: int = 7) -> dict:
    import dagster as dg
    import requests
    import sqlalchemy as sa

    from orchestration.assembly import build_defs
    from orchestration.config import LifelineConfig
    from orchestration.load import load
    from orchestration.pipeline import build
    from seeds.generate import generate
    from syncs.engine import run_syncs
    from syncs.sandbox.server import run_in_thread
    from syncs.warehouse import Warehouse

    work = Path(work) / f"freshness_{people}"
    setup_started = time.perf_counter()
    if warehouse_path is not None:
        warehouse = Warehouse(kind="duckdb", duckdb_path=Path(warehouse_path).resolve())
    else:
        data = work / "data"
        if not (data / "_truth").exists():
            generate(data, people=people, seed=5, as_of=AS_OF)
        warehouse = Warehouse(kind="duckdb", duckdb_path=work / "warehouse.duckdb")
        if warehouse.duckdb_path.exists():
            warehouse.duckdb_path.unlink()
        load(warehouse, data, replace=True)
        build(warehouse, AS_OF, checks=False)
    setup_s = time.perf_counter() - setup_started
    shutil.rmtree(work / "landing", ignore_errors=True)
    landing = work / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    engine = warehouse.engine()
    with engine.connect() as conn:
        candidates = conn.execute(sa.text(
            "select p.user_id, p.email from profiles p where p.email_consent and p.user_id is not null "
            "and p.profile_id not in (select profile_id from audience_members where channel = 'email') "
            "and p.sends_since_last_engagement < 3 "
            "and mod(cast(('0x' || substr(md5(p.profile_id || '\:cart_abandonment'), 1, 7)) as bigint), 100) >= 10 "
            "order by p.profile_id limit :n"), {"n": trials * 3}).fetchall()
    engine.dispose()
    timings: list[float] = []
    profiles: list[dict] = []
    phase = random.Random(seed)
    token = int(time.time())  # unique event ids when trials run again on a reused warehouse
    with run_in_thread(work / "sandbox", port=0, rate_limits=False, reset=True) as sandbox:
        syncs_file = work / "syncs.yml"
        syncs_file.write_text(f"""syncs:
  - name: klaviyo_cart_abandonment
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: klaviyo, list_name: cart_abandonment, base_url: {sandbox.base_url}/klaviyo, api_key_env: BENCH_KEY}}
""")
        os.environ.update(LIFELINE_SYNCS_FILE=str(syncs_file), BENCH_KEY="sandbox-token",
                          LIFELINE_HOME=str(work / ".lifeline"))
        initial_started = time.perf_counter()
        run_syncs(warehouse, syncs_file, env={"BENCH_KEY": "sandbox-token"}, progress=False)  # initial state
        initial_sync_s = time.perf_counter() - initial_started
        defs = build_defs(warehouse, LifelineConfig(landing_dir=landing,
                                                    sensor_interval_seconds=max(5, int(sensor_interval or 5))))
        repo = defs.get_repository_def()
        sensor = repo.get_sensor_def("landing_files")
        job = defs.resolve_job_def("landing_to_destinations")
        used = 0
        for trial in range(trials):
            user_id, email = candidates[used]
            used += 1
            # the daemon ticks every `sensor_interval` s; the file lands at a random moment in between
            tick_wait = phase.uniform(0, sensor_interval) if sensor_interval else 0.0
            started = time.perf_counter()
            (landing / "events").mkdir(exist_ok=True)
            (landing / "events" / f"trial{trial}.jsonl").write_text(json.dumps({
                "event_id": f"fresh-{token}-{trial}", "event_type": "add_to_cart", "user_id": user_id,
                "occurred_at": (AS_OF - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "product_id": "P0001", "cart_id": f"fresh-cart-{token}-{trial}"}) + "\n")
            time.sleep(tick_wait)
            with dg.instance_for_test() as instance:
                tick_started = time.perf_counter()
                result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
                [request] = result.run_requests
                run_started = time.perf_counter()
                outcome = job.execute_in_process(instance=instance, run_config=request.run_config,
                                                 asset_selection=request.asset_selection,
                                                 tags={**request.tags, "lifeline/as_of": AS_OF.isoformat()},
                                                 raise_on_error=False)
                run_s = time.perf_counter() - run_started
                steps = {st.step_key: round(st.end_time - st.start_time, 2)
                         for st in instance.get_run_step_stats(outcome.run_id) if st.start_time and st.end_time}
            check_started = time.perf_counter()
            summary = requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()
            delivered = email in _list_emails(sandbox.base_url)
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            profiles.append({"trial": trial, "seconds": round(elapsed, 1), "delivered": delivered,
                             "run_ok": outcome.success, "tick_wait_s": round(tick_wait, 1),
                             "tick_s": round(run_started - tick_started, 2), "run_s": round(run_s, 1),
                             "steps_s": steps, "selected_assets": len(request.asset_selection),
                             "check_s": round(time.perf_counter() - check_started, 2),
                             "dbt": _dbt_profile(run_started)})
            print(f"trial {trial}: {elapsed:.1f}s (tick wait {tick_wait:.1f}s, run {run_s:.1f}s: {steps}), "
                  f"run {'ok' if outcome.success else 'FAILED'}, delivered={delivered}, "
                  f"list size {summary['klaviyo']['lists'].get('cart_abandonment')}", flush=True)
    timings.sort()
    return {"people": people, "trials": trials, "sensor_interval_s": sensor_interval,
            "warehouse_reused": warehouse_path is not None, "setup_s": round(setup_s, 1),
            "initial_sync_s": round(initial_sync_s, 1), "seconds": [round(t, 1) for t in timings],
            "p50_s": round(statistics.median(timings), 1),
            "p95_s": round(timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))], 1),
            "all_delivered": all(p["delivered"] for p in profiles), "profiles": profiles,
            "memory_limit": warehouse.dbt_env()["LIFELINE_DUCKDB_MEMORY_LIMIT"],
            "load_average_end": [round(x, 2) for x in os.getloadavg()], "target": {"p50_s": 60, "p95_s": 120}}


def _dbt_profile(since: float, top: int = 10) -> dict:
    """Nodes, status and slowest nodes of the dbt invocation dagster-dbt made in this trial: the
    newest run_results.json under the project's target folder written after `since` (perf_counter)."""
    from orchestration.dbt_runner import dbt_project_dir

    cutoff = time.time() - (time.perf_counter() - since)
    found = [p for p in (dbt_project_dir() / "target").glob("*/run_results.json") if p.stat().st_mtime >= cutoff]
    if not found:
        return {}
    results = json.loads(max(found, key=lambda p: p.stat().st_mtime).read_text())
    nodes = results["results"]
    kinds: dict[str, float] = {}
    for n in nodes:
        kind = n["unique_id"].split(".")[0]
        kinds[kind] = round(kinds.get(kind, 0.0) + n["execution_time"], 1)
    ranked = sorted(nodes, key=lambda n: n["execution_time"], reverse=True)[:top]
    return {"elapsed_s": round(results.get("elapsed_time", 0.0), 1), "nodes": len(nodes), "node_seconds_by_kind": kinds,
            "slowest": [{"node": n["unique_id"].split(".", 2)[-1], "seconds": round(n["execution_time"], 2)}
                        for n in ranked]}


def _list_emails(base_url: str) -> set[str]:
    import requests

    headers = {"Authorization": "Klaviyo-API-Key sandbox-token", "revision": "2026-07-15"}
    lists = requests.get(f"{base_url}/klaviyo/api/lists", headers=headers, timeout=10).json()["data"]
    ids = [l["id"] for l in lists if l["attributes"]["name"] == "cart_abandonment"]
    emails: set[str] = set()
    for list_id in ids:
        url = f"{base_url}/klaviyo/api/lists/{list_id}/profiles?page[size]=100"
        while url:
            body = requests.get(url, headers=headers, timeout=10).json()
            emails |= {p["attributes"].get("email") for p in body["data"]}
            url = body["links"].get("next")
    return emails


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / ".data"))
    parser.add_argument("--sensor-interval", type=float, default=30,
                        help="seconds between sensor ticks (LifelineConfig's default is 30; 0 ticks at once)")
    parser.add_argument("--warehouse", type=Path, default=None, help="a DuckDB file already loaded and built")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit of the dbt runs (e.g. 10GB)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_freshness.json",
                        help="JSON file whose entry for this number of people is replaced")
    args = parser.parse_args()
    if args.memory_limit:
        os.environ["LIFELINE_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    result = run(Path(args.work), args.people, args.trials, args.sensor_interval, args.warehouse)
    history = json.loads(args.out.read_text()) if args.out.exists() else {}
    history[str(args.people)] = result
    args.out.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "profiles"}, indent=2))
