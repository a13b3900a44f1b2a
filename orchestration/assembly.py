"""Builds the Dagster definitions for a warehouse and a configuration (orchestration/definitions.py holds `defs`).

Klaviyo feedback pull -> raw tables -> dbt models (grouped by folder; the event models partitioned
by UTC day) -> prediction step -> one asset per sync in syncs.yml (the destination), with dbt tests
and Great Expectations suites as asset checks, schedules, the landing-folder sensor, freshness
checks and failure alerts (orchestration/automation.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from orchestration.checks import build_dq_checks
from orchestration.automation import build_jobs, build_schedules, build_sensors
from orchestration.config import LifelineConfig
from orchestration.dbt_assets import build_dbt_assets
from orchestration.dbt_runner import telemetry_off_env
from orchestration.feedback_assets import build_feedback_asset
from orchestration.partitions import daily_partitions
from orchestration.raw_assets import build_raw_assets
from orchestration.sync_assets import (build_prediction_asset, build_sync_assets, default_syncs_path,
                                       synced_audiences)
from syncs.warehouse import Warehouse


def build_defs(warehouse: Warehouse, config: LifelineConfig) -> dg.Definitions:
    # dbt runs as a subprocess of this code location and reads its connection from the environment.
    os.environ.update(warehouse.dbt_env())
    for key, value in telemetry_off_env().items():
        os.environ.setdefault(key, value)
    dbt = build_dbt_assets(warehouse, daily_partitions(config.partitions), keep_runs=config.dbt_runs_kept)
    assets = [build_feedback_asset(warehouse, config.feedback),
              build_raw_assets(warehouse, config.landing_dir, config.thresholds.raw_freshness_hours),
              dbt.partitioned, dbt.unpartitioned, build_prediction_asset(warehouse),
              *build_sync_assets(warehouse, default_syncs_path(), config)]
    synced = synced_audiences(default_syncs_path())
    home = Path(os.environ.get("LIFELINE_HOME", Path.cwd() / ".lifeline"))
    return dg.Definitions(
        assets=assets,
        asset_checks=[build_dq_checks(warehouse, synced, home / "dq")],
        jobs=build_jobs(config),
        schedules=build_schedules(config),
        sensors=build_sensors(config),
        resources={"dbt": dbt.resource},
    )

