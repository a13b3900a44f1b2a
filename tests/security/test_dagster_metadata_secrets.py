"""Nothing a Dagster run writes holds a token or a raw email: the event log (asset
materialisations and their metadata, asset check results, failures with their messages), the
run's tags, and every file under the instance's storage folder (run and event databases, compute
logs). Canary API keys are planted; one run syncs with a key the platform refuses (the failure's
message is in the log), one succeeds."""
from __future__ import annotations

import csv
from pathlib import Path

import dagster as dg
from dagster._serdes import serialize_value

from orchestration.assembly import build_defs
from orchestration.config import LifelineConfig
from orchestration.load import load
from syncs.sandbox.server import run_in_thread

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "mini"
GOOD = "sk-canary-DAGSTER-GOOD-55e1c0"
WRONG = "sk-canary-DAGSTER-WRONG-9a7d42"
AS_OF = {"lifeline/as_of": "2026-11-01T00:00:00"}


def raw_emails() -> set[str]:
    with (MINI / "customers.csv").open() as handle:
        return {row["email"] for row in csv.DictReader(handle) if row["email"] and "@" in row["email"]}


def written_by(instance: dg.DagsterInstance, root: Path) -> list[tuple[str, str]]:
    """(where, text) of everything the runs left: serialised event records, run tags, files."""
    found = []
    for run in instance.get_runs():
        found.append((f"run {run.run_id} tags", repr(run.tags)))
        for record in instance.all_logs(run.run_id):
            found.append((f"event {record.dagster_event_type} of {run.run_id}", serialize_value(record)))
    for path in root.rglob("*"):
        if path.is_file():
            found.append((str(path), path.read_bytes().decode("utf-8", "replace")))
    return found


def test_dagster_runs_write_no_token_and_no_raw_email(duck_warehouse, tmp_path, monkeypatch):
    for key in duck_warehouse.dbt_env():
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LIFELINE_HOME", str(tmp_path / ".lifeline"))
    load(duck_warehouse, MINI, replace=True)
    storage = tmp_path / "dagster_home"
    storage.mkdir()
    with run_in_thread(tmp_path / "sandbox", port=0, token=GOOD, rate_limits=False) as sandbox:
        syncs_file = tmp_path / "syncs.yml"
        syncs_file.write_text(f"""syncs:
  - name: klaviyo_cart_abandonment
    source: {{audience: cart_abandonment, channel: email}}
    destination: {{type: klaviyo, list_name: cart_abandonment, base_url: {sandbox.base_url}/klaviyo, api_key_env: CANARY_KEY}}
""")
        monkeypatch.setenv("LIFELINE_SYNCS_FILE", str(syncs_file))
        defs = build_defs(duck_warehouse, LifelineConfig(landing_dir=tmp_path / "landing"))
        job = defs.resolve_job_def("lifeline_everything")
        with dg.DagsterInstance.local_temp(str(storage)) as instance:
            monkeypatch.setenv("CANARY_KEY", WRONG)
            refused = job.execute_in_process(instance=instance, tags=AS_OF, raise_on_error=False,
                                              partition_key="2026-11-01")
            assert not refused.success  # the platform refused the key: the failure is in the log
            monkeypatch.setenv("CANARY_KEY", GOOD)
            # The first run materialised everything but the refused sync: the sync alone again.
            sync_asset = dg.AssetKey(["destinations", "klaviyo_cart_abandonment"])
            synced = job.execute_in_process(instance=instance, tags=AS_OF, partition_key="2026-11-01",
                                            asset_selection=[sync_asset])
            assert synced.success
            done = {e.asset_key.to_user_string() for e in synced.get_asset_materialization_events()}
            assert done == {"destinations/klaviyo_cart_abandonment"}
            # Everything else materialised (this run is also the suite's check that lifeline_everything
            # builds the whole project through Dagster): the refused sync is the only failed step.
            refused_done = {e.asset_key.to_user_string() for e in refused.get_asset_materialization_events()}
            assert {"identity_map", "profiles", "audience_members", "predictions/profile_predictions"} <= refused_done
            failed_steps = {e.step_key for e in refused.all_events if e.event_type_value == "STEP_FAILURE"}
            assert failed_steps == {"destinations__klaviyo_cart_abandonment"}, failed_steps
            everything = written_by(instance, storage)
    failures = [text for where, text in everything if "STEP_FAILURE" in where]
    assert any("refused the API key" in text for text in failures), "the refused sync's failure was not logged"
    assert len(everything) > 100
    secrets = {GOOD, WRONG}
    emails = raw_emails()
    assert emails
    for where, text in everything:
        for secret in secrets:
            assert secret not in text, f"a token is written in {where}"
        leaked = sorted(e for e in emails if e in text)
        assert not leaked, f"raw emails {leaked} are written in {where}"
