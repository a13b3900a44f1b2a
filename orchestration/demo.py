"""`lifeline demo`: the whole job on the embedded default, end to end.

generate (deterministic, cached in .lifeline/demo_data) -> load into the warehouse -> build
(dbt + predictions + checks) -> sandbox destinations on loopback (in this process) -> syncs ->
a summary of profiles, stages, audiences and what each destination received.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests
import sqlalchemy as sa

from orchestration.dbt_runner import PROJECT_ROOT
from orchestration.load import load
from orchestration.pipeline import build
from syncs.warehouse import Warehouse

DEMO_AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)


def ensure_demo_data(home: Path, people: int, seed: int, regenerate: bool, echo: Callable[[str], None]) -> Path:
    from seeds.generate import generate

    out = home / "demo_data" / f"people{people}_seed{seed}"
    marker = out / "_truth" / "manifest.json"
    if regenerate or not marker.exists():
        echo(f"==> generating demo data: {people:,} people, seed {seed}")
        generate(out, people=people, seed=seed, as_of=DEMO_AS_OF)
    else:
        echo(f"==> demo data: reusing {out}")
    return out


def summarise(warehouse: Warehouse) -> dict:
    engine = warehouse.engine()
    try:
        with engine.connect() as conn:
            q = lambda sql: conn.execute(sa.text(sql)).fetchall()
            return {
                "profiles": q("select count(*) from profiles")[0][0],
                "stages": dict(q("select lifecycle_stage, count(*) from profiles group by 1 order by 2 desc")),
                "audiences": [tuple(r) for r in q(
                    "select audience, channel, count(*), sum(case when is_holdout then 1 else 0 end) "
                    "from audience_members group by 1, 2 order by 1, 2")],
                "quarantined": q("select count(*) from quarantine")[0][0],
                "excluded_identifiers": q("select count(*) from identity_exclusions")[0][0],
            }
    finally:
        engine.dispose()


def run_demo(warehouse: Warehouse, *, home: Path, people: int, seed: int, port: int, regenerate: bool,
             echo: Callable[[str], None]) -> dict:
    from syncs.engine import run_syncs
    from syncs.sandbox.server import run_in_thread

    data = ensure_demo_data(home, people, seed, regenerate, echo)
    echo(f"==> loading into {warehouse.describe()}")
    for name, result in load(warehouse, data, replace=True).items():
        echo(f"    raw.{name}: {result.rows:,} rows")
    summary = build(warehouse, DEMO_AS_OF, echo=lambda m: echo(f"==> {m}"))
    for check in summary.checks:
        echo(f"    check {check.suite}: {'pass' if check.success else 'FAIL'}")

    token = os.environ.get("LIFELINE_SANDBOX_TOKEN", "sandbox-token")
    with run_in_thread(home / "sandbox", port=port, token=token) as sandbox:
        echo(f"==> sandbox destinations on {sandbox.base_url}")
        env = dict(os.environ, KLAVIYO_API_KEY=token, LIFELINE_KLAVIYO_BASE_URL=f"{sandbox.base_url}/klaviyo")
        if summary.blocking_failures:
            echo("==> syncs skipped: a data-quality check with severity ERROR failed")
            results = []
        else:
            echo("==> syncing audiences")
            results = run_syncs(warehouse, PROJECT_ROOT / "syncs.yml", None, env=env, progress=False)
        received = requests.get(f"{sandbox.base_url}/_sandbox/summary", timeout=10).json()

    facts = summarise(warehouse)
    echo("")
    echo(f"Profiles: {facts['profiles']:,}  (quarantined rows: {facts['quarantined']:,}, "
         f"identifiers kept out of stitching: {facts['excluded_identifiers']:,})")
    echo("Lifecycle stages: " + ", ".join(f"{k} {v:,}" for k, v in facts["stages"].items()))
    echo("Audiences (members, of which holdout):")
    for audience, channel, members, holdout in facts["audiences"]:
        echo(f"  {audience:<28} {channel:<6} {members:>6,}  ({holdout:,} holdout)")
    echo("Syncs:")
    for r in results:
        echo(f"  {r.name:<36} {r.status:<8} +{r.adds} ~{r.updates} -{r.removes}  rejected {r.rejections}")
    echo("Destinations received:")
    echo(json.dumps(received, indent=2, sort_keys=True))
    return {"facts": facts, "syncs": results, "received": received}
