"""Daily partitions of the event models through Dagster (orchestration/partitions.py): a backfill of
three days is one run with one dbt invocation over [first day 00:00, last day + 1), and leaves the
tables a full refresh would build; one partition leaves later days' raw rows unprocessed; the
schedules and the landing sensor ask for the right days."""
from __future__ import annotations

import csv
import json
import os
import shutil
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from orchestration.assembly import build_defs
from orchestration.config import LifelineConfig, Partitions, Schedules
from orchestration.dbt_assets import AS_OF_TAG, FULL_REFRESH_TAG
from orchestration.dbt_runner import dbt_project_dir, run_dbt
from orchestration.load import load
from orchestration.partitions import range_tags
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
START = date(2026, 10, 1)
EVENT_MODELS = ("base_events", "base_message_events", "stg_events", "stg_message_events")
EVENT_KEYS = [dg.AssetKey(["staging", name]) for name in EVENT_MODELS]
EVENT_COLUMNS = ["event_id", "event_type", "occurred_at", "user_id", "email"]
MESSAGE_COLUMNS = ["message_id", "channel", "event", "occurred_at", "recipient", "campaign"]


def event(event_id: str, at: str, user: str = "u1", event_type: str = "page_view") -> dict[str, str]:
    return {"event_id": event_id, "event_type": event_type, "occurred_at": at, "user_id": user,
            "email": f"{user}@example.com"}


def message(message_id: str, at: str, kind: str = "opened") -> dict[str, str]:
    return {"message_id": message_id, "channel": "email", "event": kind, "occurred_at": at,
            "recipient": "u1@example.com", "campaign": "welcome"}


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_batch(folder: Path, events: list[dict], messages: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "events.csv", EVENT_COLUMNS, events)
    if messages:
        write_csv(folder / "message_events.csv", MESSAGE_COLUMNS, messages)
    return folder


FIRST = ([event("e1", "2026-10-01T09:00:00Z"), event("e2", "2026-10-01T18:00:00Z", "u2"),
          event("e3", "2026-10-02T10:00:00Z")],
         [message("m1", "2026-10-02T08:00:00Z", "delivered")])


@pytest.fixture(scope="module")
def built_first(tmp_path_factory) -> Path:
    """A DuckDB file with days 2026-10-01..02 loaded and built by dbt (as `lifeline build` would)."""
    root = tmp_path_factory.mktemp("first")
    warehouse = Warehouse(kind="duckdb", duckdb_path=root / "warehouse.duckdb")
    load(warehouse, write_batch(root / "files", *FIRST), replace=True)
    run_dbt(warehouse, "build", ["--select", "+stg_events", "+stg_message_events"], as_of=AS_OF)
    return warehouse.duckdb_path


@pytest.fixture
def project(built_first: Path, duck_warehouse: Warehouse, tmp_path: Path,
            monkeypatch) -> tuple[dg.Definitions, Warehouse]:
    """A copy of the built warehouse and the Definitions over it (partitions from 2026-10-01)."""
    shutil.copyfile(built_first, duck_warehouse.duckdb_path)
    for key in duck_warehouse.dbt_env():  # build_defs exports them for dbt: keep them out of other tests
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LIFELINE_SYNCS_FILE", str(tmp_path / "no-syncs.yml"))
    config = LifelineConfig(landing_dir=tmp_path / "landing", partitions=Partitions(start_date=START))
    return build_defs(duck_warehouse, config), duck_warehouse


def run_events(defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("hourly_build_and_sync")
    tags = {AS_OF_TAG: AS_OF.isoformat(), **kwargs.pop("tags", {})}
    return job.execute_in_process(instance=instance, asset_selection=EVENT_KEYS, tags=tags, **kwargs)


def dbt_invocations(run_id: str) -> list[Path]:
    """The target folders dagster-dbt gave this run's dbt invocations (<op>-<run id[:7]>-<uuid>), in
    DBT_TARGET_PATH (relative to the project) or the project's target folder, as dagster-dbt chooses."""
    root = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    root = root if root.is_absolute() else dbt_project_dir() / root
    return sorted(p for p in root.glob(f"*-{run_id[:7]}-*") if p.is_dir())


def table_digest(warehouse: Warehouse) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the sorted rows of each event model (without based_at / staged_at, the
    run that wrote the row, which differs between runs by design)."""
    def relation(name: str) -> str:
        stamp = "based_at" if name.startswith("base_") else "staged_at"
        return f"(select * exclude ({stamp}) from staging.{name})"

    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        return {name: con.execute(
            f"select count(*), md5(coalesce(string_agg(row_text, chr(10) order by row_text), '')) "
            f"from (select cast(t as varchar) as row_text from {relation(name)} as t)").fetchone()
            for name in EVENT_MODELS}


def stg_event_ids(warehouse: Warehouse) -> dict[str, str]:
    with duckdb.connect(str(warehouse.duckdb_path), read_only=True) as con:
        return {i: str(at) for i, at in con.execute("select event_id, occurred_at from staging.stg_events").fetchall()}


def test_a_three_day_backfill_is_one_run_one_dbt_call_and_equals_a_full_refresh(project, tmp_path, dbt_artifacts):
    defs, warehouse = project
    later = write_batch(tmp_path / "later", [
        event("e4", "2026-10-03T12:00:00Z", "u3", "add_to_cart"),
        event("e5", "2026-10-04T08:30:00Z"),
        event("e6", "2026-10-05T23:59:59Z", "u2"),
        event("late-1", "2026-10-02T22:00:00Z", "u3"),       # late, inside the look-back of 10-03
        event("e3", "2026-10-02T09:00:00Z", "u1", "identify"),  # stored id, earlier copy: it wins
    ], [message("m2", "2026-10-04T09:00:00Z"), message("m2", "2026-10-04T09:05:00Z", "clicked")])
    load(warehouse, later, replace=False)

    with dg.instance_for_test() as instance:
        result = run_events(defs, instance, tags=range_tags(date(2026, 10, 3), date(2026, 10, 5)))
        assert result.success
        assert len(instance.get_runs()) == 1
        done = {(e.asset_key.path[-1], e.partition) for e in result.get_asset_materialization_events()}
    days = ("2026-10-03", "2026-10-04", "2026-10-05")
    assert done == {(model, day) for model in EVENT_MODELS for day in days}

    [invocation] = dbt_invocations(result.run_id)  # exactly one dbt call for the three days
    args = json.loads((invocation / "run_results.json").read_text())["args"]
    assert args["which"] == "build"
    # The window travels in LIFELINE_RUN_VARS, not --vars (a new --vars value costs a full re-parse).
    assert "partition_start" not in args.get("vars", {}) and "as_of" not in args.get("vars", {}), args
    # dbt's own log: the range, widened by the 3-day look-back, is the window it processed.
    assert "base_events (incremental): window [2026-09-30 00:00:00, 2026-10-06 00:00:00)" in (
        invocation / "dbt.log").read_text()

    ids = stg_event_ids(warehouse)
    assert {"e4", "e5", "e6", "late-1"} <= set(ids) and ids["e3"] == "2026-10-02 09:00:00"
    incremental = table_digest(warehouse)
    run_dbt(warehouse, "build", ["--select", *EVENT_MODELS, "--full-refresh"], as_of=AS_OF)
    assert table_digest(warehouse) == incremental
    assert incremental["stg_events"][0] == 7 and incremental["stg_message_events"][0] == 3


def test_one_partition_processes_its_day_and_leaves_later_rows_for_their_own(project, tmp_path, dbt_artifacts):
    defs, warehouse = project
    load(warehouse, write_batch(tmp_path / "later", [event("e4", "2026-10-03T12:00:00Z"),
                                                     event("e9", "2026-10-06T12:00:00Z")]), replace=False)
    with dg.instance_for_test() as instance:
        day3 = run_events(defs, instance, partition_key="2026-10-03")
        assert day3.success
        ids = stg_event_ids(warehouse)
        assert "e4" in ids and "e9" not in ids  # the 10-06 raw row lies after the window
        assert max(ids.values()) < "2026-10-04"
        assert set(ids) == {"e1", "e2", "e3", "e4"}
        [invocation] = dbt_invocations(day3.run_id)
        assert "stg_events (incremental): window [2026-09-30 00:00:00, 2026-10-04 00:00:00)" in (
            invocation / "dbt.log").read_text()

        day6 = run_events(defs, instance, partition_key="2026-10-06")
        assert day6.success
    assert set(stg_event_ids(warehouse)) == {"e1", "e2", "e3", "e4", "e9"}


def test_a_partition_outside_the_definition_is_refused_before_dbt_runs(project):
    defs, warehouse = project
    before = table_digest(warehouse)
    with dg.instance_for_test() as instance, pytest.raises(Exception, match="2026-09-30"):
        run_events(defs, instance, partition_key="2026-09-30")  # before partitions.start_date
    assert table_digest(warehouse) == before


# --- schedules and sensor: which partition a run asks for (no dbt involved) ---------------------------

@pytest.fixture
def light_defs(duck_warehouse: Warehouse, tmp_path: Path, monkeypatch):
    def make(**config) -> dg.Definitions:
        for key in duck_warehouse.dbt_env():
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("LIFELINE_SYNCS_FILE", str(tmp_path / "no-syncs.yml"))
        config.setdefault("partitions", Partitions(start_date=START))
        return build_defs(duck_warehouse, LifelineConfig(landing_dir=tmp_path / "landing", **config))
    return make


def evaluate(defs: dg.Definitions, name: str, at: datetime):
    schedule = defs.get_repository_def().get_schedule_def(name)
    with dg.instance_for_test() as instance:
        return schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                                                repository_def=defs.get_repository_def()))


def test_exactly_the_event_models_are_partitioned_by_day(light_defs):
    """base_* (incremental_slice) and stg_* (staged_slice) bound their rows by the window; nothing else does."""
    graph = light_defs().resolve_asset_graph()
    partitioned = {key for key in graph.get_all_asset_keys() if graph.get(key).is_partitioned}
    assert partitioned == set(EVENT_KEYS)


def test_schedules_ask_for_the_current_utc_day(light_defs):
    defs = light_defs(schedules=Schedules(timezone="America/New_York"))
    # 21:00 in New York on Oct 5 is already Oct 6 in UTC.
    evening = datetime(2026, 10, 5, 21, 0, tzinfo=ZoneInfo("America/New_York"))
    [hourly] = evaluate(defs, "hourly", evening).run_requests
    assert hourly.partition_key == "2026-10-06"
    [nightly] = evaluate(defs, "nightly", datetime(2026, 10, 7, 2, 30, tzinfo=timezone.utc)).run_requests
    assert nightly.partition_key == "2026-10-07"
    job = defs.resolve_job_def("nightly_full_check")
    assert job.tags[FULL_REFRESH_TAG] == "true"
    # Both jobs hold the partitioned events models and the unpartitioned rest, syncs included.
    hourly_job = defs.resolve_job_def("hourly_build_and_sync")
    assert hourly_job.partitions_def is not None and "2026-10-06" in hourly_job.partitions_def.get_partition_keys(
        current_time=datetime(2026, 10, 6, 1, tzinfo=timezone.utc))


def test_a_start_date_after_today_skips_with_the_setting_named(light_defs):
    defs = light_defs(partitions=Partitions(start_date=date(2027, 1, 1)))
    tick = evaluate(defs, "hourly", datetime(2026, 10, 5, 12, tzinfo=timezone.utc))
    assert not tick.run_requests and "partitions.start_date 2027-01-01" in tick.skip_message


def test_landing_sensor_asks_for_the_days_its_files_cover(light_defs, tmp_path):
    from orchestration.automation import landing_run_request

    defs = light_defs()
    graph = defs.resolve_asset_graph()
    config = LifelineConfig(landing_dir=tmp_path / "landing", partitions=Partitions(start_date=START))
    landing = tmp_path / "landing"
    write_batch(landing, [event("n1", "2026-10-04T10:00:00Z"), event("n2", "2026-10-02T23:30:00-02:00"),
                          event("bad", "not-a-date")],
                [message("n3", "2026-10-05T01:00:00Z")])
    request = landing_run_request(config, graph, today=date(2026, 10, 20))
    # 2026-10-02T23:30-02:00 is Oct 3 in UTC; the unparseable row does not widen the range.
    assert request.partition_key_range == dg.PartitionKeyRange("2026-10-03", "2026-10-05")
    assert dg.AssetKey(["staging", "stg_events"]) in request.asset_selection

    # Days before partitions.start_date or after today are clamped to days that have a partition.
    (landing / "message_events.csv").unlink()
    write_csv(landing / "events.csv", EVENT_COLUMNS, [event("o1", "2026-09-01T00:00:00Z"),
                                                      event("f1", "2027-01-01T00:00:00Z")])
    request = landing_run_request(config, graph, today=date(2026, 10, 20))
    assert request.partition_key_range == dg.PartitionKeyRange("2026-10-01", "2026-10-20")

    # Files without timestamps (customers) or with none parseable: today's partition.
    (landing / "events.csv").unlink()
    (landing / "customers.csv").write_text("customer_id,email\nc1,c1@example.com\n")
    request = landing_run_request(config, graph, today=date(2026, 10, 20))
    assert request.partition_key_range == dg.PartitionKeyRange("2026-10-20", "2026-10-20")


def test_a_run_naming_no_partition_fails_clearly_and_builds_nothing(project):
    defs, warehouse = project
    before = table_digest(warehouse)
    with dg.instance_for_test() as instance:
        result = run_events(defs, instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "names no partition: choose a day" in failure.event_specific_data.error.message
    assert dbt_invocations(result.run_id) == [] and table_digest(warehouse) == before


def test_the_landing_sensor_reads_unchanged_files_once(light_defs, tmp_path):
    repo = light_defs().get_repository_def()
    sensor = repo.get_sensor_def("landing_files")
    write_batch(tmp_path / "landing", [event("n1", "2026-10-04T10:00:00Z")])
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
        [request] = first.run_requests
        assert request.partition_key_range == dg.PartitionKeyRange("2026-10-04", "2026-10-04")
        assert first.cursor == request.run_key
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo,
                                                             cursor=first.cursor))
        assert not again.run_requests and "already requested" in again.skip_message
