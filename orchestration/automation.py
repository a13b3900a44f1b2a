"""Schedules, sensors and freshness checks.

- `hourly_build_and_sync`: dbt build (incremental models merge new rows) + prediction step + syncs,
  on the daily partition of the current UTC day (orchestration/partitions.py).
- `nightly_full_check`: the same with --full-refresh, so drift between incremental and full
  results cannot accumulate, and every check runs on fully rebuilt data.
- `landing_files` sensor: new files in the landing folder trigger a run of just the raw tables
  they belong to and what depends on them (a new abandoned cart reaches its audience within
  minutes, not at the next hourly batch), over the days their events cover (one run for the whole
  range), or the current day. Behavioural files (events, message_events) skip the identity,
  lifecycle, analytics and quality models, which the hourly run rebuilds (orchestration/landing.py).
- `feedback_pull` (orchestration/feedback_assets.py): Klaviyo events into raw.message_events.
- freshness of the raw tables is a FreshnessPolicy on their assets (orchestration/raw_assets.py,
  lifeline.yml thresholds.raw_freshness_hours).
- `alert_on_failure`: a failed run (including a blocking ERROR check or a tripped sync safety
  limit, both of which fail their step) is sent to the configured alert channels.
"""
from __future__ import annotations

import hashlib
import os
import json
from datetime import date, datetime, timezone

import dagster as dg

from orchestration.alerts import Alert, send_alert
from orchestration.config import LifelineConfig
from orchestration.dbt_assets import FULL_REFRESH_TAG, TRIGGER_TAG
from orchestration.feedback_assets import FEEDBACK_GROUP, build_feedback_job, build_feedback_schedule
from orchestration.landing import landing_selection
from orchestration.partitions import clamp_day, day_key, range_tags, utc_day
from orchestration.raw_assets import covered_days, pending_files



def build_jobs(config: LifelineConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    # The jobs mix the daily-partitioned dbt events models with unpartitioned assets: a run names
    # a partition (or a range) and the unpartitioned assets simply run with it.
    built = dg.AssetSelection.all() - dg.AssetSelection.groups("raw", FEEDBACK_GROUP)
    hourly = dg.define_asset_job("hourly_build_and_sync", selection=built,
                                 description="Incremental dbt build, predictions and every sync.")
    nightly = dg.define_asset_job("nightly_full_check", selection=built, tags={FULL_REFRESH_TAG: "true"},
                                  description="Full-refresh build with every check, then the syncs.")
    landing = dg.define_asset_job("landing_to_destinations",
                                  selection=dg.AssetSelection.all() - dg.AssetSelection.groups(FEEDBACK_GROUP),
                                  description="Load new landing files and build what they affect.")
    everything = dg.define_asset_job("lifeline_everything", selection=built,
                                     description="Build everything from the raw tables already loaded.")
    return [hourly, nightly, landing, everything, build_feedback_job()]


def _now(context: dg.ScheduleEvaluationContext) -> datetime:
    return context.scheduled_execution_time or datetime.now(timezone.utc)


def today_request(config: LifelineConfig, moment: datetime) -> dg.RunRequest | dg.SkipReason:
    """A run on the partition of moment's UTC day."""
    today = utc_day(moment)
    if today < config.partitions.start_date:
        return dg.SkipReason(f"partitions.start_date {config.partitions.start_date} in lifeline.yml is after today "
                             f"({today}): there is no partition to build yet; move start_date back to build now")
    return dg.RunRequest(partition_key=day_key(today))


def build_schedules(config: LifelineConfig) -> list[dg.ScheduleDefinition]:
    status = dg.DefaultScheduleStatus.RUNNING if config.schedules.enabled else dg.DefaultScheduleStatus.STOPPED
    timing = {"execution_timezone": config.schedules.timezone, "default_status": status}

    @dg.schedule(name="hourly", job_name="hourly_build_and_sync", cron_schedule=config.schedules.incremental_cron,
                 description="Incremental build and syncs on today's (UTC) partition.", **timing)
    def hourly(context: dg.ScheduleEvaluationContext):
        return today_request(config, _now(context))

    @dg.schedule(name="nightly", job_name="nightly_full_check", cron_schedule=config.schedules.nightly_check_cron,
                 description="Full-refresh build and every check (recorded on today's UTC partition).", **timing)
    def nightly(context: dg.ScheduleEvaluationContext):
        return today_request(config, _now(context))

    return [hourly, nightly, build_feedback_schedule(config.feedback)]


def landing_run_request(config: LifelineConfig, asset_graph, today: date | None = None,
                        requested: str | None = None) -> dg.RunRequest | dg.SkipReason:
    """The run for the files waiting in the landing folder; `requested` is the run key already asked
    for (the sensor's cursor), so unchanged files are not read again on every tick."""
    pending = pending_files(config.landing_dir)
    if not pending:
        return dg.SkipReason(f"no new files in {config.landing_dir}")
    files = sorted(str(f) for table_files in pending.values() for f in table_files)
    fingerprint = hashlib.sha1(json.dumps([(f, os.stat(f).st_mtime_ns) for f in files]).encode()).hexdigest()
    if requested == f"landing-{fingerprint}":
        return dg.SkipReason(f"the files in {config.landing_dir} were already requested ({requested})")
    selection = landing_selection(asset_graph, pending)
    tags = {TRIGGER_TAG: "landing", "lifeline/tables": ",".join(sorted(pending))}
    today = today or datetime.now(timezone.utc).date()
    if today >= config.partitions.start_date:
        # One run over the days the new events cover (or today), clamped to existing partitions.
        first, last = covered_days(pending) or (today, today)
        tags.update(range_tags(clamp_day(first, config.partitions, today), clamp_day(last, config.partitions, today)))
    return dg.RunRequest(
        run_key=f"landing-{fingerprint}",
        asset_selection=selection,
        run_config={"ops": {"raw_tables": {"config": {"paths": files}}}},
        tags=tags,
    )


def build_sensors(config: LifelineConfig) -> list:
    @dg.sensor(name="landing_files", job_name="landing_to_destinations",
               minimum_interval_seconds=config.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"New files in {config.landing_dir} -> load them and build what they affect.")
    def landing_files(context: dg.SensorEvaluationContext):
        request = landing_run_request(config, context.repository_def.asset_graph, requested=context.cursor)
        if isinstance(request, dg.RunRequest):
            context.update_cursor(request.run_key)
        return request

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
