"""Schedules, sensors and freshness checks.

- `hourly_build_and_sync`: dbt build (incremental models merge new rows) + prediction step + syncs.
- `nightly_full_check`: the same with --full-refresh, so drift between incremental and full
  results cannot accumulate, and every check runs on fully rebuilt data.
- `landing_files` sensor: new files in the landing folder trigger a run of just the raw tables
  they belong to and everything downstream of them (a new abandoned cart reaches its audience
  within minutes, not at the next hourly batch).
- freshness of the raw tables is a FreshnessPolicy on their assets (orchestration/raw_assets.py,
  lifeline.yml thresholds.raw_freshness_hours).
- `alert_on_failure`: a failed run (including a blocking ERROR check or a tripped sync safety
  limit, both of which fail their step) is sent to the configured alert channels.
"""
from __future__ import annotations

import hashlib
import os
import json

import dagster as dg

from orchestration.alerts import Alert, send_alert
from orchestration.config import LifelineConfig
from orchestration.raw_assets import pending_files

DBT_OP = "lifeline_dbt"


def build_jobs(config: LifelineConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    not_raw = dg.AssetSelection.all() - dg.AssetSelection.groups("raw")
    hourly = dg.define_asset_job("hourly_build_and_sync", selection=not_raw,
                                 description="Incremental dbt build, predictions and every sync.")
    nightly = dg.define_asset_job("nightly_full_check", selection=not_raw,
                                  config={"ops": {DBT_OP: {"config": {"full_refresh": True}}}},
                                  description="Full-refresh build with every check, then the syncs.")
    landing = dg.define_asset_job("landing_to_destinations", selection=dg.AssetSelection.all(),
                                  description="Load new landing files and build what they affect.")
    everything = dg.define_asset_job("lifeline_everything", selection=not_raw,
                                     description="Build everything from the raw tables already loaded.")
    return [hourly, nightly, landing, everything]


def build_schedules(config: LifelineConfig) -> list[dg.ScheduleDefinition]:
    status = dg.DefaultScheduleStatus.RUNNING if config.schedules.enabled else dg.DefaultScheduleStatus.STOPPED
    return [
        dg.ScheduleDefinition(name="hourly", job_name="hourly_build_and_sync", cron_schedule=config.schedules.incremental_cron,
                              execution_timezone=config.schedules.timezone, default_status=status),
        dg.ScheduleDefinition(name="nightly", job_name="nightly_full_check", cron_schedule=config.schedules.nightly_check_cron,
                              execution_timezone=config.schedules.timezone, default_status=status),
    ]


def landing_run_request(config: LifelineConfig, asset_graph) -> dg.RunRequest | dg.SkipReason:
    pending = pending_files(config.landing_dir)
    if not pending:
        return dg.SkipReason(f"no new files in {config.landing_dir}")
    files = sorted(str(f) for table_files in pending.values() for f in table_files)
    fingerprint = hashlib.sha1(json.dumps([(f, os.stat(f).st_mtime_ns) for f in files]).encode()).hexdigest()
    raw_keys = [dg.AssetKey(["raw", table]) for table in sorted(pending)]
    selection = dg.AssetSelection.assets(*raw_keys).downstream().resolve(asset_graph)
    return dg.RunRequest(
        run_key=f"landing-{fingerprint}",
        asset_selection=sorted(selection, key=lambda k: k.to_user_string()),
        run_config={"ops": {"raw_tables": {"config": {"paths": files}}}},
        tags={"lifeline/trigger": "landing", "lifeline/tables": ",".join(sorted(pending))},
    )


def build_sensors(config: LifelineConfig) -> list:
    @dg.sensor(name="landing_files", job_name="landing_to_destinations",
               minimum_interval_seconds=config.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"New files in {config.landing_dir} -> load them and build what they affect.")
    def landing_files(context: dg.SensorEvaluationContext):
        return landing_run_request(config, context.repository_def.asset_graph)

    @dg.run_failure_sensor(name="alert_on_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                           monitor_all_code_locations=False)
    def alert_on_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        message = context.failure_event.message or "run failed"
        kind = "sync_blocked" if "safety limit" in message.lower() else (
            "check_failed" if "check" in message.lower() else "run_failed")
        send_alert(Alert(kind=kind, title=f"Lifeline run {run.job_name} failed", details=message[:2000],
                         where=f"job {run.job_name}", run_url=f"{config.alerts.ui_base_url}/runs/{run.run_id}"),
                   config.alerts)

    return [landing_files, alert_on_failure]
