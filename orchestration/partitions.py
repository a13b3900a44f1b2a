"""Daily UTC partitions of the event-windowed dbt models, and how a partition (or a range of them,
run as one single-run backfill) becomes the dbt vars `partition_start` / `partition_end`.

A run over partitions [first, last] processes the raw rows with occurred_at in
[first 00:00 - event_lookback_days, last + 1 day 00:00) (macros/incremental_events.sql). The
partition of the current UTC day exists already (end_offset=1): the hourly schedule fills it as
the day goes on.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.config import Partitions

KEY_FORMAT = "%Y-%m-%d"
VAR_FORMAT = "%Y-%m-%d %H:%M:%S"


def daily_partitions(settings: Partitions) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.strftime(KEY_FORMAT), timezone="UTC",
                                        end_offset=1)


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of a moment (a naive moment is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.date()


def day_key(day: date) -> str:
    return day.strftime(KEY_FORMAT)


def clamp_day(day: date, settings: Partitions, today: date) -> date:
    """The day itself when it has a partition, else the nearest day that has one."""
    return min(max(day, settings.start_date), today)


def window_vars(window: dg.TimeWindow) -> dict[str, str]:
    """dbt vars for a partition time window: naive UTC timestamps, end exclusive."""
    def naive_utc(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime(VAR_FORMAT)

    return {"partition_start": naive_utc(window.start), "partition_end": naive_utc(window.end)}


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover partitions first..last (Dagster's single-run backfill tags)."""
    if last < first:
        raise ValueError(f"partition range {first}..{last} ends before it starts")
    return {ASSET_PARTITION_RANGE_START_TAG: day_key(first), ASSET_PARTITION_RANGE_END_TAG: day_key(last)}

