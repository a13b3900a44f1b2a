"""The Klaviyo feedback pull as a Dagster asset (`feedback/klaviyo_events`), upstream of
raw/message_events: each materialisation pulls the Klaviyo events since the stored cursor into
raw.message_events (syncs/feedback/klaviyo_pull.py), configured by lifeline.yml's `feedback:`
section. Its job `feedback_pull` runs on the `feedback_pull` schedule (feedback.pull_cron), which
is running by default only when feedback.enabled is true.
"""

import os

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.config import Feedback
from syncs.warehouse import Warehouse

FEEDBACK_KEY = dg.AssetKey(["feedback", "klaviyo_events"])
FEEDBACK_GROUP = "feedback"
FEEDBACK_JOB = "feedback_pull"


def build_feedback_asset(warehouse: Warehouse, settings: Feedback) -> dg.AssetsDefinition:
    @dg.asset(key=FEEDBACK_KEY, group_name=FEEDBACK_GROUP, kinds={"klaviyo"},
              description="Klaviyo events (GET /api/events) since the stored cursor, appended to raw.message_events.")
    def klaviyo_events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from syncs.feedback.cursors import CursorStore
        from syncs.feedback.klaviyo_pull import KlaviyoPullError, pull_klaviyo_events
        from syncs.feedback.writer import MessageEventWriter

        api_key = os.environ.get(settings.klaviyo_api_key_env)
        if not api_key:
            raise dg.Failure(description=f"environment variable {settings.klaviyo_api_key_env} is not set: export the "
                                         "Klaviyo private API key there (or name another in feedback.klaviyo_api_key_env "
                                         "of lifeline.yml)")
        try:
            result = pull_klaviyo_events(MessageEventWriter(warehouse), CursorStore(warehouse),
                                         settings.klaviyo_base_url, api_key)
        except KlaviyoPullError as exc:
            raise dg.Failure(description=f"Klaviyo feedback pull failed: {exc}") from exc
        context.log.info(f"klaviyo: {result.events} event(s) on {result.pages} page(s), {result.written} new")
        return dg.MaterializeResult(metadata={"pages": result.pages, "events": result.events,
                                              "written": result.written, "cursor": result.cursor or ""})

    return klaviyo_events


def build_feedback_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(FEEDBACK_JOB, selection=dg.AssetSelection.assets(FEEDBACK_KEY),
                               description="Pull platform engagement events (Klaviyo) into raw.message_events.")


def build_feedback_schedule(settings: Feedback) -> dg.ScheduleDefinition:
    status = dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED
    return dg.ScheduleDefinition(name=FEEDBACK_JOB, job_name=FEEDBACK_JOB, cron_schedule=settings.pull_cron,
                                 execution_timezone="UTC", default_status=status,
                                 description="Klaviyo feedback pull (lifeline.yml feedback.pull_cron; on when "
                                             "feedback.enabled).")
