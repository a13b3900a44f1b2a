"""Freshness: from a new events file landing to the affected trigger audience delivered to the
sandbox, through the Dagster sensor path (sensor tick -> run request -> run of exactly the
selected assets -> sync), p50 and p95 over repeated trials.

    python benchmarks/bench_freshness.py [--people 20000] [--trials 5]

Each trial drops one events file with an add_to_cart (45 minutes before as_of) for a consenting
person not yet in cart_abandonment, and stops the clock when that person's email is a member of
the sandbox's Klaviyo `cart_abandonment` list.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = datetime(2026, 11, 1)


def run(work: Path, people: int = 20_000, trials: int = 5) -> dict:
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
    data = work / "data"
    if not (data / "_truth").exists():
        generate(data, people=people, seed=5, as_of=AS_OF)
    warehouse = Warehouse(kind="duckdb", duckdb_path=work / "warehouse.duckdb")
    if warehouse.duckdb_path.exists():
        warehouse.duckdb_path.unlink()
    load(warehouse, data, replace=True)
    build(warehouse, AS_OF, checks=False)
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
    with run_in_thread(work / "sandbox", port=0, rate_limits=False, reset=True) as sandbox:
        syncs_file = work / "syncs.yml"
        syncs_file.write_text(f"""syncs:
  - name: klaviyo_cart_abandonment
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: klaviyo, list_name: cart_abandonment, base_url: {sandbox.base_url}/klaviyo, api_key_env: BENCH_KEY}}
""")
        os.environ.update(LIFELINE_SYNCS_FILE=str(syncs_file), BENCH_KEY="sandbox-token",
                          LIFELINE_HOME=str(work / ".lifeline"))
        run_syncs(warehouse, syncs_file, env={"BENCH_KEY": "sandbox-token"}, progress=False)  # initial state
        defs = build_defs(warehouse, LifelineConfig(landing_dir=landing, sensor_interval_seconds=5))
        repo = defs.get_repository_def()
        sensor = repo.get_sensor_def("landing_files")
        job = defs.resolve_job_def("landing_to_destinations")
        used = 0
        for trial in range(trials):
            user_id, email = candidates[used]
            used += 1
            started = time.perf_counter()
            (landing / "events").mkdir(exist_ok=True)
            (landing / "events" / f"trial{trial}.jsonl").write_text(json.dumps({
                "event_id": f"fresh-{trial}", "event_type": "add_to_cart", "user_id": user_id,
                "occurred_at": (AS_OF - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "product_id": "P0001", "cart_id": f"fresh-cart-{trial}"}) + "\n")
            with dg.instance_for_test() as instance:
                result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
                [request] = result.run_requests
                outcome = job.execute_in_process(instance=instance, run_config=request.run_config,
                                                 asset_selection=request.asset_selection,
                                                 tags={"lifeline/as_of": AS_OF.isoformat()}, raise_on_error=False)
            summary = requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()
            delivered = email in _list_emails(sandbox.base_url)
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            print(f"trial {trial}: {elapsed:.1f}s, run {'ok' if outcome.success else 'FAILED'}, "
                  f"delivered={delivered}, list size {summary['klaviyo']['lists'].get('cart_abandonment')}")
    timings.sort()
    return {"people": people, "trials": trials, "seconds": [round(t, 1) for t in timings],
            "p50_s": round(statistics.median(timings), 1),
            "p95_s": round(timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))], 1)}


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
    args = parser.parse_args()
    print(json.dumps(run(Path(args.work), args.people, args.trials), indent=2))
