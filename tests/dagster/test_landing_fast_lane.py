"""The landing sensor's fast lane (orchestration/landing.py): an events file takes the behavioural
path only (no identity, lifecycle or analytics models), a known person's new event reaches the
cart-abandonment audience in that run even from a combination of identifiers never stitched
before, a new person waits for the next full run, and after that run every table equals a full
refresh."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

import table_snapshot
from orchestration.assembly import build_defs
from orchestration.config import LifelineConfig
from orchestration.contract import CONTRACT_MARTS
from orchestration.dbt_runner import run_dbt
from orchestration.load import load
from orchestration.pipeline import build
from syncs.warehouse import Warehouse

AS_OF = datetime(2026, 11, 1)
COMPARED = [*CONTRACT_MARTS, "intermediate.int_profile_events", "intermediate.int_consent_signals",
            "identity_map", "audiences.int_profile_last_product"]
RUN_STAMPS = {"record_changed_at", "attributed_at", "staged_at", "changed_at"}
IDENTITY = ["identity_map", "intermediate/int_identity_records", "intermediate/int_record_profiles"]


def rows(conn, sql: str, **params) -> list[tuple]:
    return [tuple(r) for r in conn.execute(sa.text(sql), params).fetchall()]


def snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    return table_snapshot.snapshot(warehouse, COMPARED, RUN_STAMPS)


@pytest.fixture
def built(duck_warehouse: Warehouse, tmp_path: Path, monkeypatch) -> Warehouse:
    from seeds.generate import generate

    for key in duck_warehouse.dbt_env():  # build_defs exports them for dbt: keep them out of other tests
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LIFELINE_SYNCS_FILE", str(tmp_path / "no-syncs.yml"))
    generate(tmp_path / "data", people=300, seed=5, as_of=AS_OF)
    load(duck_warehouse, tmp_path / "data", replace=True)
    build(duck_warehouse, AS_OF, checks=False)
    return duck_warehouse


def test_an_events_file_takes_the_fast_lane_and_the_next_full_run_catches_up(built: Warehouse, tmp_path: Path):
    engine = built.engine()
    with engine.connect() as conn:
        [(profile_id, user_id)] = rows(conn, """
            select profile_id, user_id from profiles
            where email_consent and user_id is not null
              and profile_id not in (select profile_id from audience_members where audience = 'cart_abandonment')
              and profile_id not in (select profile_id from audience_members where channel = 'email')
              and sends_since_last_engagement < 3
            order by profile_id limit 1""")
    engine.dispose()
    at = (AS_OF - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ")
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    (landing / "events" / "new.jsonl").write_text("\n".join(json.dumps(e) for e in [
        # a known person on a new device: (cookie, user_id) was never seen together
        {"event_id": "fast-1", "event_type": "add_to_cart", "occurred_at": at, "user_id": user_id,
         "anonymous_id": "fast-new-device", "product_id": "P0001", "cart_id": "fast-cart"},
        # somebody never seen before: needs the identity graph
        {"event_id": "fast-2", "event_type": "page_view", "occurred_at": at, "anonymous_id": "fast-stranger"},
    ]) + "\n")
    defs = build_defs(built, LifelineConfig(landing_dir=landing))
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        tick = repo.get_sensor_def("landing_files").evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=repo))
        [request] = tick.run_requests
        selected = {k.to_user_string() for k in request.asset_selection}
        assert {"raw/events", "staging/stg_events", "intermediate/int_profile_events", "profiles",
                "audiences/aud_cart_abandonment", "audience_members"} <= selected
        assert not set(IDENTITY) & selected
        assert not {k for k in selected if k.startswith(("analytics/", "lifecycle"))} | ({"quarantine"} & selected)
        outcome = defs.resolve_job_def("landing_to_destinations").execute_in_process(
            instance=instance, run_config=request.run_config, asset_selection=request.asset_selection,
            tags={**request.tags, "lifeline/as_of": AS_OF.isoformat()})
        assert outcome.success
    engine = built.engine()
    with engine.connect() as conn:
        # the known person's cart reached the audience in the landing run, through identity_map
        assert rows(conn, "select profile_id, record_changed_at from intermediate.int_profile_events "
                          "where event_id = 'fast-1'") == [(profile_id, None)]
        assert rows(conn, "select channel from audience_members where audience = 'cart_abandonment' "
                          "and profile_id = :p order by channel", p=profile_id) == [("ads",), ("email",)]
        # the landing run read the new raw rows by their load stamp, not its whole window: the
        # mark of what base_events has processed moved to the newest stamp
        assert rows(conn, "select loaded_at from staging.base_events__load_mark") == rows(
            conn, "select max(_lifeline_loaded_at) from raw.events")
        # identity did not run: the new device and the stranger are not stitched yet
        assert rows(conn, "select count(*) from identity_map where identifier_value in "
                          "('fast-new-device', 'fast-stranger')") == [(0,)]
        assert rows(conn, "select count(*) from intermediate.int_profile_events where event_id = 'fast-2'") == [(0,)]
    engine.dispose()

    build(built, AS_OF, checks=False)  # the hourly run: everything, incrementally
    engine = built.engine()
    with engine.connect() as conn:
        [(stitched_profile, changed_at)] = rows(conn, "select profile_id, record_changed_at from "
                                                      "intermediate.int_profile_events where event_id = 'fast-1'")
        assert stitched_profile == profile_id and changed_at is not None
        assert rows(conn, "select profile_id from identity_map where identifier_value = 'fast-new-device'") == [(profile_id,)]
        assert rows(conn, "select count(*) from intermediate.int_profile_events where event_id = 'fast-2'") == [(1,)]
    engine.dispose()
    caught_up = snapshot(built)
    run_dbt(built, "build", ["--exclude-resource-type", "test", "--full-refresh"], as_of=AS_OF)
    full = snapshot(built)
    for relation in COMPARED:
        assert caught_up[relation] == full[relation], f"{relation} differs from a full refresh"


def test_only_landing_and_scheduled_partition_runs_read_new_rows_by_stamp():
    from orchestration.dbt_assets import new_rows_var

    assert new_rows_var({"lifeline/trigger": "landing"}) == {"partition_new_rows": True}
    assert new_rows_var({"dagster/schedule_name": "hourly"}) == {"partition_new_rows": True}
    # a backfill or a day re-run by hand reprocesses its whole window
    assert new_rows_var({"dagster/backfill": "abc"}) == {}
    assert new_rows_var({}) == {}


def test_an_event_whose_record_lost_its_profile_takes_the_profile_identity_map_gives(built: Warehouse, tmp_path: Path):
    """int_profile_events resolves through identity_map every event whose record has no profile,
    a tombstoned record (profile_id null) as well as a missing one: here the record of a known
    person's combination was tombstoned while identity_map still maps her user_id (as when her
    identifiers were excluded until a change of the exclusion list that int_record_profiles has not
    seen yet), and her new event with that combination gets identity_map's profile."""
    engine = built.engine()
    with engine.begin() as conn:
        [(record_id, anonymous_id, user_id, email, phone, profile_id)] = rows(conn, """
            select records.record_id, events.anonymous_id, events.user_id, events.email, events.phone,
                   identity.profile_id
            from staging.stg_events as events
            join intermediate.int_record_profiles as records
              on records.source_table = 'events'
             and records.anonymous_id_key = coalesce(events.anonymous_id, '')
             and records.user_id_key = coalesce(events.user_id, '')
             and records.email_key = coalesce(events.email, '')
             and records.phone_key = coalesce(events.phone, '')
            join identity_map as identity
              on identity.identifier_type = 'user_id' and identity.identifier_value = events.user_id
            where records.profile_id is not null and events.anonymous_id is not null
            order by events.event_id limit 1""")
        conn.execute(sa.text("update intermediate.int_record_profiles set profile_id = null where record_id = :r"),
                     {"r": record_id})
    engine.dispose()
    at = (AS_OF - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "landing" / "events").mkdir(parents=True)
    (tmp_path / "landing" / "events" / "new.jsonl").write_text(json.dumps(
        {"event_id": "tombstoned-1", "event_type": "add_to_cart", "occurred_at": at, "anonymous_id": anonymous_id,
         "user_id": user_id, "email": email, "phone": phone, "product_id": "P0001", "cart_id": "tombstoned-cart"}) + "\n")
    load(built, tmp_path / "landing")
    run_dbt(built, "run", ["--select", "base_events", "stg_events", "int_profile_events"], as_of=AS_OF)
    engine = built.engine()
    with engine.connect() as conn:
        assert rows(conn, "select profile_id from intermediate.int_profile_events "
                          "where event_id = 'tombstoned-1'") == [(profile_id,)]
    engine.dispose()
