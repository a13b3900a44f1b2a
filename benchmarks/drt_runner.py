"""drt-core (PyPI `drt-core`, https://github.com/drt-hub/drt) set up to push the benchmark audience
to the sandbox, for the like-for-like comparison in benchmarks/bench_sync.py.

drt's own `klaviyo` destination cannot be pointed at another host (its base URL is the constant
https://a.klaviyo.com/api) and makes 2-3 requests per row (create/patch profile + add to list).
The fairest comparison is drt's generic `rest_api` destination in `body_mode: batch`, POSTing
the same Klaviyo bulk-import job body Lifeline sends (10,000 profiles per request, same fields,
same list) to the same sandbox endpoint, with drt's rate limiter raised out of the way. drt
does strictly less work per row than Lifeline: it neither reads the job's profiles back (so it
keeps no destination ids) nor records per-row state. drt's snapshot diff
(`incremental_strategy: diff`) needs a PostgreSQL or Snowflake source, so from DuckDB a change is
synced by sending the whole audience again (`mode: full`), and removals never reach the list.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from benchmarks.report import Measured, run_measured
from benchmarks.synthetic_audience import AUDIENCE, CHANNEL, TABLE

SYNC_NAME = "bench_drt_klaviyo"
BATCH = 10_000
PROFILE_TEMPLATE = (
    '{"type":"profile","attributes":{"external_id":{{ r.key | tojson }},"email":{{ r.email | tojson }},'
    '"phone_number":{{ r.phone | tojson }},"first_name":{{ r.first_name | tojson }},'
    '"last_name":{{ r.last_name | tojson }},"properties":{{ r.payload }}}}')


def batch_template(list_id: str) -> str:
    return ('{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
            '{% for r in rows %}' + PROFILE_TEMPLATE + '{% if not loop.last %},{% endif %}{% endfor %}'
            ']}},"relationships":{"lists":{"data":[{"type":"list","id":"' + list_id + '"}]}}}}')


def write_project(project: Path, duckdb_path: Path, base_url: str, token: str, list_id: str,
                  requests_per_second: float = 1_000_000) -> None:
    """A drt project (drt_project.yml, syncs/, and a HOME with .drt/profiles.yml) under `project`."""
    (project / "syncs").mkdir(parents=True, exist_ok=True)
    (project / "home" / ".drt").mkdir(parents=True, exist_ok=True)
    (project / "drt_project.yml").write_text("name: lifeline_bench\nprofile: bench\n")
    (project / "home" / ".drt" / "profiles.yml").write_text(yaml.safe_dump(
        {"bench": {"type": "duckdb", "database": str(duckdb_path)}}))
    sync = {
        "name": SYNC_NAME,
        "model": (f"select profile_id as key, email, phone, first_name, last_name, payload from {TABLE} "
                  f"where audience = '{AUDIENCE}' and channel = '{CHANNEL}' and not is_holdout"),
        "destination": {
            "type": "rest_api", "url": f"{base_url}/klaviyo/api/profile-bulk-import-jobs", "method": "POST",
            "headers": {"Authorization": f"Klaviyo-API-Key {token}", "revision": "2026-07-15",
                        "Content-Type": "application/vnd.api+json"},
            "body_mode": "batch", "batch_template": batch_template(list_id), "max_records_per_request": BATCH,
        },
        "sync": {"mode": "full", "batch_size": BATCH, "rate_limit": {"requests_per_second": requests_per_second},
                 "on_error": "fail"},
    }
    (project / "syncs" / f"{SYNC_NAME}.yml").write_text(yaml.safe_dump(sync, sort_keys=False))


def run_drt(project: Path) -> Measured:
    drt = Path(sys.executable).parent / "drt"
    env = dict(os.environ, HOME=str(project / "home"), DO_NOT_TRACK="1", DRT_TELEMETRY="0", NO_COLOR="1")
    result = run_measured([str(drt), "run", "--select", SYNC_NAME, "--quiet"], env=env, cwd=project)
    if result.returncode != 0:
        raise RuntimeError(f"drt run failed ({result.returncode}): {result.output[-2000:]}")
    return result
