"""The Klaviyo feedback pull as a Dagster asset and schedule (orchestration/feedback_assets.py),
materialised against the real sandbox into a real DuckDB warehouse."""
from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from feedback.conftest import message_events
from feedback.test_klaviyo_pull import TOKEN, seed_engagement

from orchestration.assembly import build_defs
from orchestration.config import Feedback, LifelineConfig
from orchestration.feedback_assets import FEEDBACK_JOB, FEEDBACK_KEY
from syncs.feedback.cursors import CursorStore
from syncs.feedback.klaviyo_pull import SOURCE
from syncs.sandbox.server import run_in_thread
from syncs.warehouse import Warehouse

KEY_ENV = "LIFELINE_TEST_KLAVIYO_KEY"


@pytest.fixture
def sandbox(tmp_path: Path):
    with run_in_thread(tmp_path / "sandbox", port=0, token=TOKEN, rate_limits=False) as started:
        yield started


@pytest.fixture
def make_defs(duck_warehouse: Warehouse, tmp_path: Path, monkeypatch):
    def make(**feedback) -> dg.Definitions:
        for key in duck_warehouse.dbt_env():  # build_defs exports them for dbt: keep them out of other tests
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("LIFELINE_SYNCS_FILE", str(tmp_path / "no-syncs.yml"))
        settings = Feedback(klaviyo_api_key_env=KEY_ENV, **feedback)
        return build_defs(duck_warehouse, LifelineConfig(landing_dir=tmp_path / "landing", feedback=settings))
    return make


def test_schedule_is_stopped_unless_feedback_is_enabled_and_feeds_raw_message_events(make_defs):
    defs = make_defs()
    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def(FEEDBACK_JOB)
    assert schedule.cron_schedule == "*/15 * * * *" and schedule.job_name == FEEDBACK_JOB
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def(FEEDBACK_JOB).asset_layer.executable_asset_keys == {FEEDBACK_KEY}
    graph = defs.resolve_asset_graph()
    assert FEEDBACK_KEY in graph.get(dg.AssetKey(["raw", "message_events"])).parent_keys
    assert dg.AssetKey(["raw", "message_events"]) in graph.get(dg.AssetKey(["staging", "base_message_events"])).parent_keys
    # The hourly build does not pull: the pull has its own schedule.
    assert FEEDBACK_KEY not in defs.resolve_job_def("hourly_build_and_sync").asset_layer.executable_asset_keys

    enabled = make_defs(enabled=True, pull_cron="*/5 * * * *").get_repository_def().get_schedule_def(FEEDBACK_JOB)
    assert enabled.default_status == dg.DefaultScheduleStatus.RUNNING and enabled.cron_schedule == "*/5 * * * *"


def test_materialising_the_pull_lands_klaviyo_events_in_raw_message_events(make_defs, sandbox, duck_warehouse,
                                                                           monkeypatch):
    events = seed_engagement(sandbox.base_url, people=6)
    expected = sorted((r["external_id"], r["event"]) for r in events if r["event"] != "sent")
    defs = make_defs(klaviyo_base_url=f"{sandbox.base_url}/klaviyo")
    job = defs.resolve_job_def(FEEDBACK_JOB)
    monkeypatch.setenv(KEY_ENV, TOKEN)
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        [materialised] = result.get_asset_materialization_events()
        metadata = materialised.materialization.metadata
        assert metadata["written"].value == len(expected) > 0
        assert sorted((r[6], r[2]) for r in message_events(duck_warehouse)) == expected
        again = job.execute_in_process(instance=instance)  # resumes from the cursor: nothing twice
        assert again.get_asset_materialization_events()[0].materialization.metadata["written"].value == 0
    assert len(message_events(duck_warehouse)) == len(expected)


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_refused_key_fails_naming_the_setting_and_writes_nothing(make_defs, sandbox, duck_warehouse,
                                                                              monkeypatch, key):
    seed_engagement(sandbox.base_url, people=3)
    if key:
        monkeypatch.setenv(KEY_ENV, key)
    else:
        monkeypatch.delenv(KEY_ENV, raising=False)
    defs = make_defs(klaviyo_base_url=f"{sandbox.base_url}/klaviyo")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(FEEDBACK_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert (KEY_ENV in message) if key is None else ("klaviyo_api_key_env" in message)
    assert key is None or key not in message  # the refused key itself is never echoed
    assert message_events(duck_warehouse) == [] and CursorStore(duck_warehouse).get(SOURCE) is None


def test_a_bad_pull_cron_names_the_file_line_and_field(tmp_path):
    from orchestration.config import ConfigError, load_config

    path = tmp_path / "lifeline.yml"
    path.write_text("feedback:\n  enabled: true\n  pull_cron: every quarter hour\n")
    with pytest.raises(ConfigError, match=r"lifeline.yml:3: feedback.pull_cron: .*not a valid cron expression"):
        load_config(path)
